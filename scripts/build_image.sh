#!/usr/bin/env bash
# Build the CPU image (./Dockerfile) without a Docker engine, and start it under gVisor.
#
#   sudo scripts/build_image.sh             # build: base, torch index, buildah bud, OCI bundle
#   sudo scripts/build_image.sh --run       # build, then the checks under runsc
#   sudo scripts/build_image.sh --run-only  # only the checks, on the bundle of a previous build
#
# For machines that reach Debian's mirrors and PyPI but neither Docker Hub nor PyTorch's
# index (docs/deploy.md, "Images"). Needs root and Debian's mmdebstrap, buildah, umoci and
# runsc (apt-get install mmdebstrap buildah umoci runsc). Where a Docker engine and Docker
# Hub are at hand, `docker build .` is the build; this script is the stand-in.
#   1. base: mmdebstrap makes a bookworm root filesystem with Debian's Python 3.11 and a
#      venv at /opt/python first on PATH (`python`, `pip` as in python:3.11-slim-bookworm;
#      Debian's own Python refuses `pip install`, PEP 668); buildah imports it as
#      localhost/outrider-base:bookworm.
#   2. torch: a PEP 503 index on 127.0.0.1 holding the torch 2.13.0 CPU wheel from this
#      disk ($TORCH_WHEEL, or what this host's pip finds: its find-links) and its
#      dependencies from PyPI.
#   3. buildah bud on ./Dockerfile, unchanged but for the two build args BASE_IMAGE and
#      TORCH_INDEX_URL (chroot isolation, vfs storage: no daemon, no overlay mounts; Docker's
#      image format, which keeps the Dockerfile's SHELL).
#   4. the image as an OCI layout (buildah push oci:) and unpacked as a bundle (umoci).
#   5. --run: runsc --network=none runs the bundle as the image's user (10001):
#      `outrider --version`, the heavy imports, and `outrider config validate` on an example.
# Everything lands in $OUTRIDER_IMAGE_DIR (default /var/tmp/outrider-image), nothing in the
# repository; timings and sizes go to $OUTRIDER_IMAGE_DIR/report.txt.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${OUTRIDER_IMAGE_DIR:-/var/tmp/outrider-image}"
BASE_TAG="localhost/outrider-base:bookworm"
IMAGE_TAG="localhost/outrider:0.1.0-cpu"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
TORCH_REQUIREMENT="torch==2.13.0"
EXAMPLE_CONFIG="examples/grpo-python-tool-cpu.yaml"
# buildah keeps its images under $WORK, not in /var/lib/containers.
BUILDAH=(buildah --root "$WORK/storage" --runroot "$WORK/runroot" --storage-driver vfs)

mode=build
case "${1:-}" in
  "") ;;
  --run) mode=build-and-run ;;
  --run-only) mode=run ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
  *) echo "usage: $0 [--run|--run-only]" >&2; exit 2 ;;
esac

log() { printf '[build_image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
record() { printf '%s\n' "$*" | tee -a "$WORK/report.txt" >&2; }

# Runs "$@" and records its wall time under the label $1 (the rest is the command).
timed() {
  local label="$1" start="$SECONDS"
  shift
  log "$label ..."
  "$@"
  record "time $label: $((SECONDS - start)) s"
}

preflight() {
  [[ "$(id -u)" == 0 ]] || die "needs root (mmdebstrap, buildah's chroot isolation and runsc)"
  local tool missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  ((${#missing[@]} == 0)) || die "missing ${missing[*]} (apt-get install ${missing[*]})"
  mkdir -p "$WORK"
}

# 1. A root filesystem like python:3.11-slim-bookworm's, from Debian packages only.
make_base_rootfs() {
  rm -f "$WORK/base.tar"
  # python3.11-dev: the official image ships Python's headers, which DeepSpeed's JIT ops need.
  # The venv's pip is Debian's ensurepip wheel; env -i keeps this host's pip settings out.
  mmdebstrap --variant=minbase --format=tar \
    --aptopt='APT::Install-Recommends "false"' \
    --include=ca-certificates,netbase,tzdata,python3.11,python3.11-venv,python3.11-dev \
    --customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin python3.11 -m venv /opt/python' \
    --customize-hook='chroot "$1" /opt/python/bin/python -c "import sys, ensurepip; assert sys.version_info[:2] == (3, 11)"' \
    bookworm "$WORK/base.tar" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECURITY_MIRROR bookworm-security main"
}

import_base() {
  local tag
  for tag in "$IMAGE_TAG" "$BASE_TAG"; do  # a rebuild replaces both
    if "${BUILDAH[@]}" inspect --type image "$tag" >/dev/null 2>&1; then
      "${BUILDAH[@]}" rmi -f "$tag" >/dev/null
    fi
  done
  local ctr mnt
  ctr="$("${BUILDAH[@]}" from --name outrider-base-import scratch)"
  mnt="$("${BUILDAH[@]}" mount "$ctr")"
  tar -C "$mnt" --numeric-owner -xpf "$WORK/base.tar"
  "${BUILDAH[@]}" umount "$ctr" >/dev/null
  "${BUILDAH[@]}" config \
    --env PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd python3 \
    --label org.opencontainers.image.description="Debian bookworm (mmdebstrap) + Python 3.11 venv at /opt/python" \
    "$ctr"
  "${BUILDAH[@]}" commit --rm "$ctr" "$BASE_TAG" >/dev/null
  "${BUILDAH[@]}" run --isolation chroot "$("${BUILDAH[@]}" from --name outrider-base-check "$BASE_TAG")" \
    -- sh -c 'command -v python pip && python --version && pip --version' >&2
  "${BUILDAH[@]}" rm outrider-base-check >/dev/null
}

# 2. torch's CPU wheel (from this disk: pip's find-links) and its dependencies, as an index.
make_torch_index() {
  rm -rf "$WORK/index"
  mkdir -p "$WORK/index/files"
  if [[ -n "${TORCH_WHEEL:-}" ]]; then
    cp "$TORCH_WHEEL" "$WORK/index/files/"
  else
    python3 -m pip download --quiet --no-deps --dest "$WORK/index/files" "$TORCH_REQUIREMENT"
  fi
  local wheel
  wheel="$(find "$WORK/index/files" -name 'torch-2.13.0+cpu-cp311-*.whl' -print -quit)"
  [[ -n "$wheel" ]] || die "no torch 2.13.0 CPU wheel for cp311 found by pip ($(ls "$WORK/index/files"))"
  python3 -m pip download --quiet --only-binary=:all: --dest "$WORK/index/files" "$wheel"
  python3 - "$WORK/index" <<'PY'
import hashlib, re, sys
from pathlib import Path
root = Path(sys.argv[1])
projects = {}
for f in sorted((root / "files").iterdir()):
    name = re.sub(r"[-_.]+", "-", f.name.split("-")[0]).lower()  # PEP 503 normalized
    projects.setdefault(name, []).append(f)
for name, files in projects.items():
    page = root / "simple" / name / "index.html"
    page.parent.mkdir(parents=True)
    links = "".join(f'<a href="../../files/{f.name}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">{f.name}</a>\n' for f in files)
    page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
print(f"index: {len(projects)} projects: {', '.join(sorted(projects))}", file=sys.stderr)
PY
}

INDEX_PID=""
stop_index() {
  if [[ -n "$INDEX_PID" ]]; then
    kill "$INDEX_PID" 2>/dev/null || true
    wait "$INDEX_PID" 2>/dev/null || true
    INDEX_PID=""
  fi
}

serve_index() {
  INDEX_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  python3 -m http.server --bind 127.0.0.1 --directory "$WORK/index" "$INDEX_PORT" >"$WORK/index.log" 2>&1 &
  INDEX_PID=$!
  trap stop_index EXIT
  local i
  for i in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$INDEX_PORT/simple/torch/')" 2>/dev/null && return 0
    sleep 0.2
  done
  die "the local index did not start (see $WORK/index.log)"
}

# 3. The project's Dockerfile. chroot isolation shares this host's network, so the RUN steps
# reach the index on 127.0.0.1, PyPI and Debian's mirrors.
# pip in the image trusts certifi's CAs only; this host's trust store (with the CA of a TLS
# proxy in front of PyPI, if any) and a pip.conf naming it are mounted at /etc/xdg/pip for the
# RUN steps: not committed (the image keeps the empty mount point). --format docker: buildah
# 1.28 ignores SHELL in OCI format, also for the build's own RUN steps (they would run under
# /bin/sh -c, without pipefail; `SHELL [..pipefail..]` + `RUN false | true` passes there).
build_image() {
  local ca="${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
  [[ -f "$ca" ]] || die "no CA bundle at $ca (set BUILD_CA_BUNDLE)"
  rm -rf "$WORK/pip"
  mkdir -p "$WORK/pip"
  cp "$ca" "$WORK/pip/ca.crt"
  printf '[global]\ncert = /etc/xdg/pip/ca.crt\n' >"$WORK/pip/pip.conf"
  if "${BUILDAH[@]}" inspect --type image "$IMAGE_TAG" >/dev/null 2>&1; then
    "${BUILDAH[@]}" rmi -f "$IMAGE_TAG" >/dev/null
  fi
  "${BUILDAH[@]}" bud --isolation chroot --format docker \
    --volume "$WORK/pip:/etc/xdg/pip:ro" \
    --build-arg BASE_IMAGE="$BASE_TAG" \
    --build-arg TORCH_INDEX_URL="http://127.0.0.1:$INDEX_PORT/simple" \
    --file "$REPO/Dockerfile" --tag "$IMAGE_TAG" "$REPO"
}

# 4. OCI layout (compressed layers, what a registry would hold) and an unpacked bundle.
export_image() {
  rm -rf "$WORK/oci" "$WORK/bundle"
  "${BUILDAH[@]}" push "$IMAGE_TAG" "oci:$WORK/oci:outrider-cpu"
  umoci unpack --image "$WORK/oci:outrider-cpu" "$WORK/bundle"
}

report_sizes() {
  record "image $IMAGE_TAG: $("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE_TAG") (buildah images, uncompressed)"
  record "base $BASE_TAG: $("${BUILDAH[@]}" images --format '{{.Size}}' "$BASE_TAG") (buildah images, uncompressed)"
  record "oci layout (compressed): $(du -sh "$WORK/oci" | cut -f1)"
  record "unpacked rootfs: $(du -sh "$WORK/bundle/rootfs" | cut -f1)"
}

# 5. One container per check from the bundle, as the image's USER, without network.
run_in_bundle() {
  local name="$1"
  shift
  python3 - "$WORK/bundle/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
config = json.load(open(path))
config["process"]["args"] = args
config["process"]["terminal"] = False
json.dump(config, open(path, "w"), indent=1)
PY
  runsc --root "$WORK/runsc-state" --network=none --ignore-cgroups delete --force "$name" >/dev/null 2>&1 || true
  runsc --root "$WORK/runsc-state" --network=none --ignore-cgroups run --bundle "$WORK/bundle" "$name"
}

run_checks() {
  [[ -f "$WORK/bundle/config.json" ]] || die "no bundle at $WORK/bundle: build first"
  mkdir -p "$WORK/runsc-state"
  local user
  user="$(python3 -c 'import json, sys; u = json.load(open(sys.argv[1]))["process"]["user"]; print(u["uid"], u["gid"], sep=":")' "$WORK/bundle/config.json")"
  [[ "$user" == "10001:10001" ]] || die "the image runs as $user, not 10001:10001"
  local out
  out="$(timed "runsc: outrider --version" run_in_bundle outrider-version outrider --version)"
  record "runsc outrider --version: $out"
  [[ "$out" == "outrider "* ]] || die "unexpected output: $out"
  timed "runsc: heavy imports" run_in_bundle outrider-imports python -c '
import os, sys
import torch, deepspeed, vllm, transformers, outrider
assert (os.getuid(), os.getgid()) == (10001, 10001), (os.getuid(), os.getgid())
assert not torch.cuda.is_available()
home = os.environ["HOME"]
assert os.access(home, os.W_OK), home
kernel = open("/proc/version").read().split()[2]  # gVisor reports its own (4.4.0)
print(f"uid {os.getuid()} on kernel {kernel}: python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"deepspeed {deepspeed.__version__}, vllm {vllm.__version__}, transformers {transformers.__version__}, "
      f"HOME {home} writable")
' | tee -a "$WORK/report.txt"
  timed "runsc: outrider config validate" run_in_bundle outrider-validate outrider config validate "$EXAMPLE_CONFIG" \
    | tee -a "$WORK/report.txt"
}

main() {
  local start="$SECONDS"
  if [[ "$mode" != run ]]; then
    preflight mmdebstrap buildah umoci python3 tar
    : >"$WORK/report.txt"
    record "build of $IMAGE_TAG from $REPO/Dockerfile, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
    timed "1 base rootfs (mmdebstrap)" make_base_rootfs
    timed "1 base import (buildah)" import_base
    timed "2 torch index" make_torch_index
    serve_index
    timed "3 buildah bud" build_image
    stop_index
    timed "4 export (oci, umoci unpack)" export_image
    report_sizes
    record "time total build: $((SECONDS - start)) s"
  fi
  if [[ "$mode" != build ]]; then
    preflight runsc python3
    run_checks
  fi
  log "done; report: $WORK/report.txt"
}

main
