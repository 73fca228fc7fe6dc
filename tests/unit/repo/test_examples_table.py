"""docs/training.md's "Examples" table lists every file in examples/ (issue 21)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _table_rows() -> list[list[str]]:
    text = (REPO / "docs" / "training.md").read_text()
    section = text.split("\n## Examples\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # after header and rule


def test_every_file_in_examples_has_a_row_and_every_row_a_file():
    listed = []
    for cells in _table_rows():
        listed += re.findall(r"`examples/([^`]+)`", cells[0])
    files = sorted(str(p.relative_to(REPO / "examples")) for p in (REPO / "examples").rglob("*") if p.is_file())
    assert sorted(listed) == files


def test_every_training_example_row_says_what_it_demonstrates_and_its_signal():
    for cells in _table_rows():
        assert cells[1], cells  # what it demonstrates
        if "train" in cells[2]:  # a run config: the measured signal rate, or why there is none
            assert re.search(r"\d+%|GPU|not measured yet", cells[3]), cells  # a rate, GPU scale, or an open item
