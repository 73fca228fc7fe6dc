"""The report's self-play section: win rates per (trained version, opponent version), summed
over the groups of rollouts.jsonl by hand."""

from __future__ import annotations

import json

from outrider.train.report import render_report
from outrider.train.selfplay_report import load_rollouts, win_rates


def _group(latest: int, opponent: int, games: int, wins: int, forfeits: int = 0, unfinished: int = 0) -> dict:
    return {"group_id": "g", "self_play": {"latest_version": latest, "opponent_version": opponent, "games": games,
                                           "wins": wins, "win_rate": wins / games, "forfeits": forfeits, "unfinished": unfinished}}


def test_win_rates_sum_the_groups_of_each_version_pair():
    records = [_group(3, 1, 4, 3), {"group_id": "plain", "rewards": [1.0]}, _group(3, 1, 4, 2, forfeits=1), _group(3, 2, 2, 1), _group(5, 1, 4, 4, unfinished=0)]
    assert win_rates(records) == [
        # (3 + 2) / (4 + 4) = 0.625
        {"version": 3, "opponent": 1, "games": 8, "wins": 5, "forfeits": 1, "unfinished": 0, "win_rate": 0.625},
        {"version": 3, "opponent": 2, "games": 2, "wins": 1, "forfeits": 0, "unfinished": 0, "win_rate": 0.5},
        {"version": 5, "opponent": 1, "games": 4, "wins": 4, "forfeits": 0, "unfinished": 0, "win_rate": 1.0},
    ]
    assert win_rates([{"group_id": "plain"}]) == []


def test_the_run_report_has_the_section_only_for_self_play_runs(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward_mean": 0.5}) + "\n")
    assert "Self-play" not in render_report(tmp_path).read_text()
    (tmp_path / "rollouts.jsonl").write_text("\n".join(json.dumps(r) for r in [_group(2, 0, 4, 3), _group(2, 1, 4, 1)]) + "\n")
    assert len(load_rollouts(tmp_path)) == 2
    page = render_report(tmp_path).read_text()
    assert "<h2>Self-play: win rate against earlier versions</h2>" in page
    assert "<tr><td>2</td><td>0</td><td>4</td><td>3</td><td>0.750</td><td>0</td><td>0</td></tr>" in page
    assert "<tr><td>2</td><td>1</td><td>4</td><td>1</td><td>0.250</td><td>0</td><td>0</td></tr>" in page
