"""Nothing in the repository points outside it: a clone has only its own files.

Scans every text file git knows (tracked, plus untracked ones not ignored) for
relative Markdown links that leave the repository or name a missing file, for
`*.md` paths that exist neither beside the file nor from the repository root,
for the sibling `shared` folder of the machine it was written on, and for the
absolute path of this checkout. Each finding is reported as `file:line: why`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]

MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A path ending in .md that is not the tail of a URL or of a longer path.
MD_PATH = re.compile(r"(?<![\w/.:-])((?:\.\.?/)*[\w-][\w.-]*(?:/[\w.-]+)*\.md)(?![\w-])")
SHARED_FOLDER = re.compile(r"\.\./shared\b")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# Documents of the machine the project was written on, cited by bare name.
OUTSIDE_NAMES = re.compile(r"\b(?:DESIGN|CONVENTIONS|ENVIRONMENT)(?:\.md)?\b")


def _files() -> list[Path]:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: the file list comes from git")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    this = Path(__file__).resolve()  # its own examples of what is refused are no findings
    return [REPO_ROOT / name for name in listed if name and (REPO_ROOT / name).is_file() and REPO_ROOT / name != this]


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _inside(target: Path) -> bool:
    try:
        target.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return False
    return True


def _problems(path: Path, text: str) -> list[str]:
    rel = path.relative_to(REPO_ROOT)
    here = path.parent
    checkout_paths = [re.compile(re.escape(str(p)) + r"(?![\w.-])") for p in (REPO_ROOT, REPO_ROOT.parent / "shared")]
    problems = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{number}"
        if SHARED_FOLDER.search(line):
            problems.append(f"{where}: cites the `shared` folder beside the repository, which a clone does not have")
        if OUTSIDE_NAMES.search(line):
            problems.append(f"{where}: cites {OUTSIDE_NAMES.search(line).group(0)!r}, a document outside the repository")
        for pattern in checkout_paths:
            if pattern.search(line):
                problems.append(f"{where}: absolute path of this checkout's machine ({pattern.pattern})")
        if path.suffix == ".md":
            if line.lstrip().startswith("```"):
                fenced = not fenced
            if not fenced:
                for target in MARKDOWN_LINK.findall(line):
                    if SCHEME.match(target) or target.startswith("#"):
                        continue
                    file_part = target.split("#", 1)[0]
                    resolved = (REPO_ROOT / file_part.lstrip("/")) if file_part.startswith("/") else here / file_part
                    if not _inside(resolved):
                        problems.append(f"{where}: link {target!r} leaves the repository")
                    elif not resolved.exists():
                        problems.append(f"{where}: link {target!r} names a missing file")
        for start, mention in ((m.start(1), m.group(1)) for m in MD_PATH.finditer(line)):
            if path.suffix != ".md" and start and line[start - 1] in "\"'":
                continue  # a string literal in code: often one part of a path joined there
            candidates = [here / mention, REPO_ROOT / mention]
            if not any(_inside(c) and c.exists() for c in candidates):
                problems.append(f"{where}: {mention!r} is no file of the repository")
    return problems


def test_no_file_points_outside_the_repository():
    problems = []
    for path in _files():
        text = _text(path)
        if text is not None:
            problems += _problems(path, text)
    assert not problems, "links or mentions outside the repository:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("see [the design](../../shared/DESIGN.md)", "leaves the repository"),
        ("see [usage](usage-that-does-not-exist.md)", "names a missing file"),
        ("order (" + "../" + "shared/notes.txt)", "`shared` folder"),
        ("rule 5 of CONVENTIONS", "a document outside the repository"),
        ("details in docs/no-such-page.md", "no file of the repository"),
        (f"built from {REPO_ROOT}/learner", "absolute path"),
    ],
)
def test_the_scan_catches_each_kind(line, why):
    """The scan is live: each kind of outside reference, written into a page under docs/, is found."""
    page = REPO_ROOT / "docs" / "page.md"
    found = _problems(page, f"# Title\n\n{line}\n")
    assert len(found) >= 1 and all(f.startswith("docs/page.md:3: ") for f in found), found
    assert any(why in f for f in found), found


def test_the_scan_accepts_what_is_inside():
    page = REPO_ROOT / "docs" / "page.md"
    text = (
        "[arch](architecture.md) [bench](benchmarks.md#anchor) [web](https://example.org/x.md) [top](#title)\n"
        "see docs/training.md and README.md; a sandbox runs /work/main.py\n"
    )
    assert _problems(page, text) == []
