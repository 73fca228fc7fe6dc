"""Static checks of scripts/build_image.sh, the engine-less build of the CPU image (issue 18).

The build itself (mmdebstrap, buildah bud, runsc; about half an hour on two cores) is not run
here: docs/deploy.md, "Images", has how and when it was run and what it measured. These
checks catch what would break it without running it: a syntax error, a failure that does
not stop it, build args the Dockerfile does not declare (buildah would ignore them and
pull from Docker Hub), a torch pin that drifted from the Dockerfile's, scratch data in the
repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "build_image.sh"


def _code_lines() -> list[str]:
    return [line for line in SCRIPT.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_script_parses_and_prints_its_usage():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    shown = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "--run-only" in shown.stdout and "set -euo" not in shown.stdout
    wrong = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage:" in wrong.stderr


def test_the_script_stops_at_the_first_failure():
    lines = _code_lines()
    assert SCRIPT.read_text().startswith("#!/usr/bin/env bash\n")
    assert lines[0] == "set -euo pipefail"  # before any command
    assert not any(re.search(r"set\s+\+[a-z]*[euo]", line) for line in lines)


def test_the_build_args_are_the_dockerfiles_args():
    dockerfile = (ROOT / "Dockerfile").read_text()
    declared = set(re.findall(r"^ARG (\w+)=", dockerfile, re.M))
    passed = set(re.findall(r"--build-arg\s+(\w+)=", SCRIPT.read_text()))
    assert passed == {"BASE_IMAGE", "TORCH_INDEX_URL"} and passed <= declared
    assert "FROM ${BASE_IMAGE}" in dockerfile and '--index-url "${TORCH_INDEX_URL}" torch==' in dockerfile
    # The script's torch is the Dockerfile's torch.
    torch_pin = re.search(r'^TORCH_REQUIREMENT="(torch==[\d.]+)"$', SCRIPT.read_text(), re.M).group(1)
    assert f'"${{TORCH_INDEX_URL}}" {torch_pin} ' in dockerfile


def test_scratch_data_stays_outside_the_repository():
    text = SCRIPT.read_text()
    default = re.search(r'^WORK="\$\{OUTRIDER_IMAGE_DIR:-([^}]+)\}"$', text, re.M).group(1)
    assert Path(default).is_absolute() and not Path(default).is_relative_to(ROOT)
    # buildah's storage goes there too, not to /var/lib/containers.
    assert '--root "$WORK/storage"' in text and '--runroot "$WORK/runroot"' in text
    assert not any(re.search(r"(^|[;&|(]\s*)docker\s", line.strip()) for line in _code_lines())  # no Docker client
