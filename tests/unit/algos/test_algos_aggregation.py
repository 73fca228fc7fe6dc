"""Loss aggregation modes: hand values, micro-batch equivalence, masking."""

from __future__ import annotations

import pytest
import torch

from outrider.learner.algos import AGGREGATIONS, AggregationInputs

F64 = torch.float64


def agg(name, loss, mask, **kw):
    params = kw.pop("params", {})
    entry = AGGREGATIONS.get(name)
    return entry(AggregationInputs(loss, mask, **kw), entry.make_params(**params))


LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]], dtype=F64)
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)


def test_hand_values():
    # Row sums 6 and 4 over lengths 3 and 1 (the 99s are masked):
    #   token_mean              (1 + 2 + 3 + 4)/4 = 2.5
    #   seq_mean_token_mean     (6/3 + 4/1)/2 = 3
    #   seq_mean_token_sum      (6 + 4)/2 = 5
    #   seq_mean_token_sum_norm (6 + 4)/(2·3) = 5/3 with L = T = 3; with L = 10: 10/20 = 0.5
    assert agg("token_mean", LOSS, MASK).item() == 2.5
    assert agg("seq_mean_token_mean", LOSS, MASK).item() == 3.0
    assert agg("seq_mean_token_sum", LOSS, MASK).item() == 5.0
    assert abs(agg("seq_mean_token_sum_norm", LOSS, MASK).item() - 5 / 3) < 1e-15
    assert agg("seq_mean_token_sum_norm", LOSS, MASK, params={"norm_length": 10}).item() == 0.5


def test_sequence_without_tokens_neither_contributes_nor_counts():
    # A third, fully masked row: seq means still divide by 2 sequences.
    loss = torch.cat([LOSS, torch.full((1, 3), 7.0, dtype=F64)])
    mask = torch.cat([MASK, torch.zeros(1, 3, dtype=torch.bool)])
    assert agg("seq_mean_token_mean", loss, mask).item() == 3.0
    assert agg("seq_mean_token_sum", loss, mask).item() == 5.0


@pytest.mark.parametrize("name", sorted(AGGREGATIONS.names()))
@pytest.mark.parametrize("seed", range(3))
def test_micro_batches_with_global_counts_sum_to_the_full_batch(name, seed):
    gen = torch.Generator().manual_seed(seed)
    b, t = 8, 6
    loss = torch.randn(b, t, generator=gen, dtype=F64)
    mask = torch.rand(b, t, generator=gen) > 0.4
    mask[:, 0] = True
    full = agg(name, loss, mask, params={"norm_length": 6} if name.endswith("_norm") else {})
    n_tok, n_seq = float(mask.sum()), float(mask.any(-1).sum())
    parts = sum(
        agg(name, loss[s], mask[s], num_tokens=n_tok, num_sequences=n_seq,
            params={"norm_length": 6} if name.endswith("_norm") else {})
        for s in (slice(0, 3), slice(3, 6), slice(6, 8))
    )
    assert abs(full.item() - parts.item()) < 1e-12


@pytest.mark.parametrize("name", sorted(AGGREGATIONS.names()))
def test_masked_entries_are_ignored_even_if_not_finite(name):
    loss = LOSS.clone()
    loss[1, 1:] = float("nan")
    assert agg(name, loss, MASK).item() == agg(name, LOSS, MASK).item()


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="loss and mask"):
        AggregationInputs(LOSS, MASK[:, :2])
