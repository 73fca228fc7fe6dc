"""Each prompt computed once (outrider.learner.forward) equals the plain forward.

The oracle is a direct transformers forward of every whole sequence with a hand-written
log-softmax, in float64 on the tiny test model; the batch has two groups with different
prompts of different lengths (so prefixes are padded), sequences of different lengths
(so suffixes are padded) and a second turn (an environment span inside the suffix).
"""

from __future__ import annotations

import torch

from outrider.learner.batch import build_batch
from outrider.learner.forward import plan_prefixes, shared_prefix_logprobs, supports_shared_prefix
from outrider.learner.models import load_actor
from outrider.proto.v1.trajectory_pb2 import Trajectory, TrajectoryGroup, Turn

PROMPTS = [[1, 330, 4512, 314, 2476, 28], [1, 77, 19, 8442]]
COMPLETIONS = [[504, 2119, 30, 2256, 42, 997, 2], [711, 19, 8442, 2], [301, 77, 1203, 2, 9, 9, 504, 30], [42, 2]]


def trajectory(prompt: list[int], completion: list[int], name: str, env_span: int = 0) -> Trajectory:
    # With env_span > 0 the last env_span tokens before the final two are an environment reply (mask 0).
    mask = [False] * len(prompt) + [True] * len(completion)
    if env_span:
        for i in range(len(mask) - 2 - env_span, len(mask) - 2):
            mask[i] = False
    return Trajectory(
        trajectory_id=name,
        prompt_length=len(prompt),
        token_ids=prompt + completion,
        logprobs=[0.0] * (len(prompt) + len(completion)),
        loss_mask=mask,
        turns=[Turn(start=len(prompt), completion_length=len(completion))],
        outcome_reward=1.0,
    )


def make_batch():
    groups = []
    for g, prompt in enumerate(PROMPTS):
        group = TrajectoryGroup(group_id=f"g{g}", env="e", task_id=f"t{g}")
        for i, completion in enumerate(COMPLETIONS):
            group.trajectories.append(trajectory(prompt, completion, f"g{g}/{i}", env_span=2 if i == 2 else 0))
        groups.append(group)
    return build_batch(groups)


def direct(model, batch):
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    log_p = torch.log_softmax(logits, -1)
    return log_p.gather(-1, batch.targets[..., None])[..., 0], -(log_p.exp() * log_p).sum(-1)


def gradient(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_each_prompt_is_computed_once():
    plan = plan_prefixes(make_batch())
    assert plan.unique == 2
    assert plan.prefix_lengths.tolist() == [6, 4]
    assert plan.prefix_of_row.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_shared_prefix_logprobs_entropies_and_gradients_equal_a_direct_forward():
    torch.manual_seed(0)
    model = load_actor("tiny-random").double()
    assert supports_shared_prefix(model)
    batch = make_batch()
    assert _packed_path_taken(model, batch)  # the packed suffix pass (sdpa) is what is compared
    mask = batch.mask.bool()
    logprobs, entropy = shared_prefix_logprobs(model, batch, with_entropy=True)
    want_logprobs, want_entropy = direct(model, batch)
    torch.testing.assert_close(logprobs[mask], want_logprobs[mask], rtol=0, atol=1e-10)
    torch.testing.assert_close(entropy[mask], want_entropy[mask], rtol=0, atol=1e-10)
    assert torch.equal(logprobs[~mask], torch.zeros_like(logprobs[~mask]))

    # The gradient of a loss over the trained tokens: the backward sums each shared
    # prefix's gradient over its rows, as the repeated forward does.
    weights = torch.linspace(-1.0, 1.0, mask.numel(), dtype=torch.float64).reshape(mask.shape)
    got = gradient(model, (weights * logprobs * batch.mask).sum() + (entropy * batch.mask).sum())
    logprobs, entropy = direct(model, batch)
    want = gradient(model, (weights * logprobs * batch.mask).sum() + (entropy * batch.mask).sum())
    assert float(want.norm()) > 0
    assert float((got - want).norm() / want.norm()) < 1e-6


def test_unsupported_models_take_the_plain_forward():
    model = load_actor("tiny-random")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert not supports_shared_prefix(model), "HF drops the KV cache under gradient checkpointing"


def _packed_path_taken(model, batch) -> bool:
    from outrider.learner.forward import supports_packed_suffix

    return supports_packed_suffix(model, int(batch.lengths.max()))


def test_packed_suffix_with_eager_attention_equals_a_direct_forward():
    # Eager attention adds its mask to the scores: the packed pass hands it an additive mask.
    torch.manual_seed(0)
    model = load_actor("tiny-random").double()
    model.config._attn_implementation = "eager"
    batch = make_batch()
    assert _packed_path_taken(model, batch)
    mask = batch.mask.bool()
    logprobs, _ = shared_prefix_logprobs(model, batch)
    want, _ = direct(model, batch)
    # HF's eager attention takes its softmax in float32 even for a float64 model
    # (transformers 5.19: `softmax(..., dtype=torch.float32)`), and the two paths reduce
    # over differently shaped score rows: agreement to float32 precision (~1e-6 here). A
    # wrong additive mask (a masked key let in) is not a rounding-size change.
    torch.testing.assert_close(logprobs[mask], want[mask], rtol=0, atol=1e-5)


def test_a_sliding_window_shorter_than_the_batch_takes_the_padded_suffix_pass():
    from outrider.learner.forward import supports_packed_suffix

    model = load_actor("tiny-random").double()
    batch = make_batch()
    longest = int(batch.lengths.max())
    model.config.sliding_window, model.config.use_sliding_window = longest - 1, True
    assert not supports_packed_suffix(model, longest)
    assert supports_packed_suffix(model, longest - 1)
    model.config.sliding_window, model.config.use_sliding_window = None, False
    # With the padded suffix pass forced (an architecture the packed pass does not claim),
    # the shared-prefix forward is still exact.
    model.config.model_type = "mistral"
    assert supports_shared_prefix(model) and not supports_packed_suffix(model, longest)
    mask = batch.mask.bool()
    logprobs, entropy = shared_prefix_logprobs(model, batch, with_entropy=True)
    want_logprobs, want_entropy = direct(model, batch)
    torch.testing.assert_close(logprobs[mask], want_logprobs[mask], rtol=0, atol=1e-10)
    torch.testing.assert_close(entropy[mask], want_entropy[mask], rtol=0, atol=1e-10)


def test_length_buckets_by_power_of_two():
    from outrider.learner.forward import length_buckets

    # bit_length: 1 → 1; 2, 3 → 2; 4..7 → 3; 8..15 → 4; 128 → 8. Shortest bucket first, row order kept.
    assert length_buckets([5, 1, 128, 3, 7, 2, 9, 4]) == [[1], [3, 5], [0, 4, 7], [6], [2]]
    assert length_buckets([6]) == [[0]]
