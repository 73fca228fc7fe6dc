"""docs/research.md states the measured results its JSON files hold: every result table is
the one outrider.experiment.tables generates from the file it names (regenerate with
`python -m outrider.experiment.tables docs/research.md`)."""

from __future__ import annotations

from pathlib import Path

from outrider.experiment.tables import MARKED, regenerate

DOC = Path(__file__).resolve().parents[3] / "docs" / "research.md"


def test_every_results_table_is_generated_from_its_json():
    text = DOC.read_text()
    files = [m.group("file") for m in MARKED.finditer(text)]
    assert files, "docs/research.md has no generated results tables"
    for name in files:
        assert (DOC.parent / name).is_file(), name
    assert regenerate(DOC) == text, "stale: python -m outrider.experiment.tables docs/research.md"
