"""The behavioural suite every backend passes (HF and vLLM, same tests, real servers).

Model: tiny-random in float32. Measured agreement of sampled logprobs with
ScoreTokens on this model: HF ~1e-5 (left-padded incremental decoding vs a
right-padded full forward pass), vLLM 0 (same kernels for both paths); the
tolerance below is 1e-4, an order of magnitude above the larger one.
"""

from __future__ import annotations

import grpc
import pytest

from outrider.proto.v1 import common_pb2
from testkit.policy import max_abs_diff

LOGPROB_TOL = 1e-4
CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name three colours."}]
PROMPTS = [[1, 4093, 198, 6004, 2, 198, 1, 520, 9531, 198], "Once upon a time"]


def completions(response):
    return [list(c.token_ids) for r in response.results for c in r.completions]


def test_info_names_backend_and_limits(server, client):
    info = client.info()
    assert info.backend == server.cfg.backend
    assert (info.model, info.max_context_length, info.vocab_size, info.dtype) == ("tiny-random", 512, 49152, "float32")
    assert (info.max_prompts, info.max_n, info.max_tokens) == (16, 16, 256)
    assert list(info.eos_token_ids) == [2]  # <|im_end|> in SmolLM2's tokenizer


def test_greedy_generation_is_deterministic(client):
    first = client.generate(PROMPTS, n=3, temperature=0.0, max_tokens=24)
    second = client.generate(PROMPTS, n=3, temperature=0.0, max_tokens=24)
    assert completions(first) == completions(second)
    for result in first.results:
        tokens = [list(c.token_ids) for c in result.completions]
        assert tokens[0] == tokens[1] == tokens[2]  # greedy ignores the sample index
        assert 1 <= len(tokens[0]) <= 24
    assert first.results[1].prompt_ids == [6403, 1980, 253, 655]  # "Once upon a time", no BOS added by this tokenizer


def test_sampled_logprobs_match_score_tokens(client, record_property):
    """Logprobs are of the raw distribution: top-k/top-p/temperature must not leak into them."""
    response = client.generate(PROMPTS, n=4, temperature=0.8, top_p=0.9, top_k=50, max_tokens=24, seed=7)
    sequences, sampled = [], []
    for result in response.results:
        for c in result.completions:
            assert len(c.logprobs) == len(c.token_ids)
            sequences.append((list(result.prompt_ids) + list(c.token_ids), len(result.prompt_ids)))
            sampled.append(list(c.logprobs))
    scored = client.score_tokens(sequences)
    assert scored.policy_version == response.policy_version
    diff = max_abs_diff(sampled, [list(s.logprobs) for s in scored.sequences])
    record_property("max_abs_logprob_diff", diff)
    print(f"max |sampled logprob - ScoreTokens| = {diff:.3g}")
    assert diff <= LOGPROB_TOL


def test_chat_template_round_trips_to_the_same_ids(client):
    template = client.apply_chat_template([CHAT])
    ids, text = list(template.tokens[0].ids), template.texts[0]
    assert text.endswith("<|im_start|>assistant\n")
    assert client.tokenize([text], add_special_tokens=False) == [ids]
    assert client.detokenize([ids], skip_special_tokens=False) == [text]
    response = client.generate([CHAT], temperature=0.0, max_tokens=4)
    assert list(response.results[0].prompt_ids) == ids


def test_stop_strings_stop(client):
    free = client.generate([PROMPTS[0]], temperature=0.0, max_tokens=24, ignore_eos=True).results[0].completions[0]
    # a 3-character stop string whose first occurrence starts mid-text
    cut = next(p for p in range(len(free.text) // 2, len(free.text) - 3) if free.text.find(free.text[p : p + 3]) == p)
    stop = free.text[cut : cut + 3]
    stopped = client.generate([PROMPTS[0]], temperature=0.0, max_tokens=24, stop=[stop]).results[0].completions[0]
    assert stopped.finish_reason == common_pb2.FINISH_REASON_STOP
    assert stopped.stop_string == stop
    assert stopped.text == free.text[:cut]  # the stop string is cut from the text
    # ids are kept exactly as sampled, up to the token that completed the stop string
    assert list(stopped.token_ids) == list(free.token_ids)[: len(stopped.token_ids)]
    assert len(stopped.token_ids) < len(free.token_ids)


def test_stop_token_ids_stop_and_are_kept(client):
    free = list(client.generate([PROMPTS[0]], temperature=0.0, max_tokens=24, ignore_eos=True).results[0].completions[0].token_ids)
    cut = next(i for i in range(3, len(free)) if free[i] not in free[:i])
    stopped = client.generate([PROMPTS[0]], temperature=0.0, max_tokens=24, stop_token_ids=[free[cut]]).results[0].completions[0]
    assert list(stopped.token_ids) == free[: cut + 1]
    assert stopped.finish_reason == common_pb2.FINISH_REASON_STOP


def test_n_samples_differ_under_temperature_one_and_seeds_replay(client):
    response = client.generate([PROMPTS[1]], n=8, temperature=1.0, max_tokens=12, seed=123, ignore_eos=True)
    samples = completions(response)
    assert len(samples) == 8 and all(len(s) == 12 for s in samples)
    assert len({tuple(s) for s in samples}) == 8
    again = client.generate([PROMPTS[1]], n=8, temperature=1.0, max_tokens=12, seed=123, ignore_eos=True)
    assert completions(again) == samples


def test_length_limits_max_tokens_and_context(client):
    response = client.generate([PROMPTS[0]], temperature=1.0, max_tokens=20, ignore_eos=True, seed=1)
    c = response.results[0].completions[0]
    assert len(c.token_ids) == 20 and c.finish_reason == common_pb2.FINISH_REASON_LENGTH
    # 509 prompt tokens leave 3 of the 512-token context
    long_prompt = [100 + i % 1000 for i in range(509)]
    c = client.generate([long_prompt], temperature=0.0, max_tokens=10, ignore_eos=True).results[0].completions[0]
    assert len(c.token_ids) == 3 and c.finish_reason == common_pb2.FINISH_REASON_LENGTH


def test_a_full_context_sequence_can_be_scored(client):
    ids = [100 + i % 1000 for i in range(512)]
    scored = client.score_tokens([(ids, 500)]).sequences[0].logprobs
    assert len(scored) == 12 and all(lp < 0 for lp in scored)


def test_streaming_delivers_the_same_completion(client):
    unary = client.generate([CHAT], n=2, temperature=1.0, max_tokens=16, seed=5, ignore_eos=True)
    chunks = list(client.generate_stream([CHAT], n=2, temperature=1.0, max_tokens=16, seed=5, ignore_eos=True))
    assert list(chunks[0].prompt_ids) == list(unary.results[0].prompt_ids)
    assert sum(1 for c in chunks if c.prompt_ids) == 1
    assert {c.policy_version for c in chunks} == {unary.policy_version}
    for j, expected in enumerate(unary.results[0].completions):
        mine = [c for c in chunks if c.completion_index == j]
        assert [t for c in mine for t in c.token_ids] == list(expected.token_ids)
        assert "".join(c.text_delta for c in mine) == expected.text
        lps = [lp for c in mine for lp in c.logprobs]
        assert max(abs(a - b) for a, b in zip(lps, expected.logprobs)) <= LOGPROB_TOL
        assert mine[-1].finish_reason == common_pb2.FINISH_REASON_LENGTH
        assert all(c.finish_reason == common_pb2.FINISH_REASON_UNSPECIFIED for c in mine[:-1])


def test_unknown_model_is_not_found(client):
    with pytest.raises(grpc.RpcError) as failure:
        client.generate([PROMPTS[0]], model="gpt-17", max_tokens=2)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert "gpt-17" in failure.value.details() and "tiny-random" in failure.value.details()
    assert client.generate([PROMPTS[0]], model="tiny-random", max_tokens=2).model == "tiny-random"


def test_seeded_sampling_of_a_batch_larger_than_one_prefill_step(client):
    """16 prompts x 300 tokens exceed the engine's per-step token budget (4,096 on CPU):
    vLLM 0.32 on CPU used to kill its engine when a seeded prefill was split across steps."""
    prompts = [[100 + (7 * p + i) % 5000 for i in range(300)] for p in range(16)]
    reply = client.generate(prompts, n=2, temperature=1.0, max_tokens=4, seed=11, ignore_eos=True)
    assert [len(c.token_ids) for r in reply.results for c in r.completions] == [4] * 32
    assert completions(client.generate(prompts, n=2, temperature=1.0, max_tokens=4, seed=11, ignore_eos=True)) == completions(reply)
