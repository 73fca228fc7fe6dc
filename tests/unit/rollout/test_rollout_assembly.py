"""Assembly of a captured session's calls into trajectories, on hand-made token lists."""

from __future__ import annotations

import pytest

from outrider.proto.v1.agent_pb2 import CapturedCall
from outrider.rollout.assembly import assemble


def call(prompt, completion, logprobs, version=3):
    return CapturedCall(prompt_token_ids=prompt, completion_token_ids=completion, completion_logprobs=logprobs,
                        policy_version=version)


def test_calls_that_extend_each_other_are_one_sequence_and_a_rewrite_starts_another():
    calls = [
        call([1, 2, 3], [4, 5], [-0.5, -0.25]),
        call([1, 2, 3, 4, 5, 6, 7], [8], [-0.125], version=4),  # adds a tool result [6, 7]
        call([9, 10], [11], [-1.0]),  # the agent summarised its history
    ]
    [first, second], report = assemble(calls, "g/0")

    assert first.trajectory_id == "g/0" and second.trajectory_id == "g/0#1"
    assert list(first.token_ids) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(first.loss_mask) == [False, False, False, True, True, False, False, True]
    assert list(first.logprobs) == [0, 0, 0, -0.5, -0.25, 0, 0, -0.125]
    assert first.prompt_length == 3
    assert [(t.start, t.completion_length, t.observation_length, t.policy_version) for t in first.turns] == [
        (3, 2, 2, 3), (7, 1, 0, 4)]

    assert list(second.token_ids) == [9, 10, 11]
    assert list(second.loss_mask) == [False, False, True]
    assert second.prompt_length == 2
    assert [(t.start, t.completion_length) for t in second.turns] == [(2, 1)]

    assert (report.calls, report.sequences, report.breaks) == (3, 2, [2])
    assert report.summary() == "3 calls -> 2 sequence(s), history rewritten at call 2"


def test_a_prompt_that_drops_the_last_completion_token_is_a_new_sequence():
    # [1, 2] + completion [3] is not a prefix of [1, 2, 4]: one differing token is enough.
    sequences, report = assemble([call([1, 2], [3], [-1.0]), call([1, 2, 4], [5], [-1.0])], "t")
    assert [list(s.token_ids) for s in sequences] == [[1, 2, 3], [1, 2, 4, 5]]
    assert report.breaks == [1]


def test_a_call_with_log_probs_missing_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"call 1: 1 log-probs for 2 completion tokens"):
        assemble([call([1], [2], [-1.0]), call([1, 2], [3, 4], [-1.0])], "t")
