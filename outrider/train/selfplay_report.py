"""The run report's self-play section: the trained policy's win rate against earlier versions.

Every self-play group's worker summary (RUN_DIR/rollouts.jsonl, key `self_play`:
outrider/rollout/selfplay.py) says which version the trained seat played (`latest_version`,
the served one when the group started), which the opponent was, and how its games went.
Summed over the groups of each (trained version, opponent version) pair:

    win rate = wins / games        (an unfinished game counts as played and not won)

so a learning policy shows win rates above 1/2 against its earlier versions, rising with
the distance between the two.
"""

from __future__ import annotations

import html
import json
from pathlib import Path


def load_rollouts(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "rollouts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def win_rates(records: list[dict]) -> list[dict]:
    """One row per (trained version, opponent version), in version order: games, wins,
    forfeits, unfinished and the win rate."""
    rows: dict[tuple[int, int], dict] = {}
    for record in records:
        played = record.get("self_play")
        if not played:
            continue
        key = (played["latest_version"], played["opponent_version"])
        row = rows.setdefault(key, {"version": key[0], "opponent": key[1], "games": 0, "wins": 0, "forfeits": 0, "unfinished": 0})
        for name in ("games", "wins", "forfeits", "unfinished"):
            row[name] += played[name]
    for row in rows.values():
        row["win_rate"] = row["wins"] / row["games"] if row["games"] else 0.0
    return [rows[key] for key in sorted(rows)]


def self_play_html(run_dir: Path) -> str:
    """The report's section ("" for a run without self-play groups)."""
    rows = win_rates(load_rollouts(run_dir))
    if not rows:
        return ""
    head = "<tr><th>version</th><th>opponent</th><th>games</th><th>wins</th><th>win rate</th><th>forfeits</th><th>unfinished</th></tr>"
    body = "\n".join(
        f"<tr><td>{r['version']}</td><td>{r['opponent']}</td><td>{r['games']}</td><td>{r['wins']}</td>"
        f"<td>{r['win_rate']:.3f}</td><td>{r['forfeits']}</td><td>{r['unfinished']}</td></tr>"
        for r in rows
    )
    return f"<h2>Self-play: win rate against earlier versions</h2>\n<table>{head}\n{body}</table>\n<p>{html.escape(_NOTE)}</p>"


_NOTE = ("The trained seat's wins over games played, per weights version it played with and opponent version "
         "(rollout.self_play); an unfinished game counts as not won.")
