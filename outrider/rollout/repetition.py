"""Repetition early stop: find a completion that loops on an n-gram of token ids.

A policy that degenerates into repeating itself spends the rest of its token budget on
the loop (Kimi k1.5, 2501.12599 §2.6.2: repeated sequences are detected and the
generation is terminated early; the detected repetitions may be penalised). The check
runs on token ids, after every Generate call, so that with partial rollouts a looping
completion is stopped at the end of the segment in which it crossed the threshold.

    count_i(g) = |{ j ≤ i : ids[j : j + n] = g }|      (overlapping windows)
    stop at the first window i with count_i(ids[i : i + n]) > max_repeats
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Repetition:
    """The n-gram that crossed the threshold and where."""

    ngram: tuple[int, ...]
    count: int
    """Its occurrences up to and including the window that crossed the threshold (max_repeats + 1)."""
    end: int
    """Index just past that window: ids[end − n : end] is the (max_repeats + 1)-th occurrence."""


def find_repetition(token_ids: Sequence[int], ngram: int, max_repeats: int) -> Repetition | None:
    """The first n-gram of `token_ids` (scanning windows left to right) to occur more than
    `max_repeats` times, or None when none does. Windows overlap: 7 7 7 holds the 2-gram
    (7, 7) twice."""
    if ngram < 1 or max_repeats < 1:
        raise ValueError(f"ngram and max_repeats must be >= 1, got {ngram} and {max_repeats}")
    ids = tuple(token_ids)
    counts: Counter[tuple[int, ...]] = Counter()
    for start in range(len(ids) - ngram + 1):
        gram = ids[start : start + ngram]
        counts[gram] += 1
        if counts[gram] > max_repeats:
            return Repetition(gram, counts[gram], start + ngram)
    return None
