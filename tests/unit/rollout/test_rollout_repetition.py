"""find_repetition: the first n-gram of token ids to occur more than max_repeats times."""

from __future__ import annotations

import pytest

from outrider.rollout.repetition import Repetition, find_repetition


def test_a_looping_trigram_is_found_at_its_third_occurrence():
    ids = [1, 2, 3, 1, 2, 3, 1, 2, 3]
    # Windows: (1,2,3) at 0, 3, 6 — its third occurrence is the window ids[6:9].
    assert find_repetition(ids, ngram=3, max_repeats=2) == Repetition((1, 2, 3), count=3, end=9)
    # Three occurrences are allowed with max_repeats=3.
    assert find_repetition(ids, ngram=3, max_repeats=3) is None


def test_windows_overlap():
    # (7,7) occurs at 0, 1, 2, 3 in five 7s: the fourth occurrence ends at index 5.
    assert find_repetition([7] * 5, ngram=2, max_repeats=3) == Repetition((7, 7), count=4, end=5)
    assert find_repetition([7] * 4, ngram=2, max_repeats=3) is None


def test_the_first_ngram_to_cross_wins_not_the_most_frequent():
    # 5 reaches its 3rd occurrence at index 4; 6 only ever occurs twice.
    assert find_repetition([5, 6, 5, 6, 5, 6], ngram=1, max_repeats=2) == Repetition((5,), count=3, end=5)
    # 9 crosses first (indices 0, 1, 2) although 4 ends up occurring more often.
    assert find_repetition([9, 9, 9, 4, 4, 4, 4], ngram=1, max_repeats=2) == Repetition((9,), 3, 3)


def test_short_or_varied_completions_do_not_repeat():
    assert find_repetition([1, 2], ngram=3, max_repeats=1) is None
    assert find_repetition(list(range(100)), ngram=1, max_repeats=1) is None


@pytest.mark.parametrize(("ngram", "max_repeats"), [(0, 1), (1, 0)])
def test_bad_parameters_are_refused(ngram, max_repeats):
    with pytest.raises(ValueError, match="ngram and max_repeats must be >= 1"):
        find_repetition([1, 1], ngram, max_repeats)
