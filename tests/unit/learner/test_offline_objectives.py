"""Sequence log-probabilities of the offline objectives against a plain forward, row by row."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from outrider.learner.offline.objectives import sequence_logprobs
from outrider.learner.offline.render import Tokenized
from outrider.models import resolve_model

# Two sequences of different lengths (so one is padded), trained on scattered tokens.
SEQUENCES = [
    Tokenized([1, 330, 4512, 314, 2476, 28, 504, 2119], [False, False, False, False, True, True, False, True]),
    Tokenized([1, 711, 19, 8442, 301], [False, False, True, True, True]),
]


def _by_hand(model, sequence: Tokenized) -> tuple[float, int]:
    """Σ log π(token k | tokens < k) over trained k ≥ 1, from one unpadded forward."""
    ids = torch.tensor([sequence.token_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    picked = [float(logprobs[k - 1, ids[0, k]]) for k in range(1, ids.shape[1]) if sequence.mask[k]]
    return sum(picked), len(picked)


@pytest.mark.parametrize("mean", [False, True])
def test_sequence_logprobs_match_a_plain_forward(mean):
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random"), dtype=torch.float32).eval()
    with torch.no_grad():
        got = sequence_logprobs(model, SEQUENCES, torch.device("cpu"), mean)
    expected = []
    for sequence in SEQUENCES:
        total, count = _by_hand(model, sequence)
        expected.append(total / count if mean else total)
    assert got.tolist() == pytest.approx(expected, abs=1e-5)  # float32 forward and log-softmax vs a float64 log-softmax
