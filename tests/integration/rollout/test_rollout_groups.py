"""Rollout groups against real policy (HF backend) and env services."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from outrider.config import parse_config
from outrider.proto.v1.common_pb2 import ChatMessage, Conversation, FinishReason
from outrider.rollout.episodes import GroupPlayer, build_group
from outrider.rollout.rewards import assign_rewards
from outrider.rollout.rpcs import Counted
from outrider.rollout.tokens import ObservationTokens
from outrider.clients.env import EnvClient
from outrider.clients.policy import PolicyClient
from outrider.stack import LocalStack
from outrider.transport import group_problem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout")
    run = parse_config(
        {
            "name": "rollout",
            "output_dir": str(root),
            "stack": {"services": ["policy", "env"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
            "env": {"builtin_envs": ["math", "guess-number"]},
        }
    )
    with LocalStack(run, root / "stack") as stack:
        addresses = stack.addresses()
        with PolicyClient(addresses["policy"], credentials=stack.credentials()) as policy, EnvClient(addresses["env"], credentials=stack.credentials()) as env:
            yield policy, env


def test_observation_tokens_continue_the_chat_template_exactly(services):
    policy, _ = services
    observations = ObservationTokens(policy)
    system = ChatMessage(role="user", content="What is 2 + 2?")
    reply = "It is 5."
    feedback = [ChatMessage(role="user", content="5 is not correct. Try again.")]
    prompt = policy.apply_chat_template([Conversation(messages=[system], add_generation_prompt=True)]).tokens[0].ids
    eos = policy.info().eos_token_ids[0]
    completion = policy.tokenize([reply])[0] + [eos]
    after = observations.after_completion(eos, feedback)
    whole = Conversation(messages=[system, ChatMessage(role="assistant", content=reply), *feedback], add_generation_prompt=True)
    expected = list(policy.apply_chat_template([whole]).tokens[0].ids)
    # Rendering everything at once gives the same ids as prompt + sampled + environment tokens.
    assert list(prompt) + completion + after == expected
    # A completion cut off by max_tokens gets the end-of-turn token from the environment side.
    cut = observations.after_completion(None, feedback)
    assert cut[0] == eos and cut[1:] == after


def test_groups_keep_sampled_tokens_and_their_logprobs_and_mask_the_environment(services):
    policy, env = services
    rollout = parse_config({"rollout": {"group_size": 4, "sampling": {"max_tokens": 16}}}).rollout
    player = GroupPlayer(policy, env, rollout)
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    started = time.perf_counter()
    episodes = player.play(task)
    elapsed = time.perf_counter() - started
    # The step-time breakdown: both services were waited on, within the play's wall time.
    assert player.seconds["policy"] > 0 and player.seconds["env"] > 0
    assert player.seconds["policy"] + player.seconds["env"] <= elapsed
    assign_rewards(task, episodes, rollout.reward)
    result = build_group(task, "rollout-test-1", episodes)
    group = result.group
    assert result.errors == [] and group_problem(group) is None
    assert len(group.trajectories) == 4
    for trajectory in group.trajectories:
        ids, mask = list(trajectory.token_ids), list(trajectory.loss_mask)
        assert 1 <= len(trajectory.turns) <= 3  # math allows 3 tries
        covered = set()
        for turn in trajectory.turns:
            span = range(turn.start, turn.start + turn.completion_length)
            assert all(mask[i] for i in span)
            covered |= set(span)
            environment = range(span.stop, span.stop + turn.observation_length)
            assert not any(mask[i] for i in environment)
        assert covered == {i for i, m in enumerate(mask) if m}, "the mask is exactly the sampled tokens"
        # The sampler's logprobs of its own tokens equal the teacher-forced ones.
        for turn in trajectory.turns:
            end = turn.start + turn.completion_length
            scored = policy.score_tokens([(ids[:end], turn.start)]).sequences[0].logprobs
            assert max(abs(a - b) for a, b in zip(scored, trajectory.logprobs[turn.start : end])) < 1e-4
        # A tiny random model never answers right: reward 0, not solved, feedback each turn.
        assert trajectory.outcome_reward == 0.0 and not trajectory.solved


def test_env_process_signals_become_shaped_step_rewards(services):
    policy, env = services
    rollout = parse_config({"rollout": {"group_size": 2, "sampling": {"max_tokens": 8}, "max_turns": 3, "reward": {"steps": "env"}}}).rollout
    player = GroupPlayer(policy, env, rollout)
    task = env.list_tasks("guess-number", split="train", limit=1)[0]
    episodes = player.play(task)
    assign_rewards(task, episodes, rollout.reward)
    for episode in episodes:
        scores = [s for s in episode.process_scores if s is not None]
        assert [r.score for r in episode.step_rewards] == scores
        # r_t = s_t − s_{t−1}: the rewards telescope to the last score.
        assert sum(r.reward for r in episode.step_rewards) == pytest.approx(scores[-1] if scores else 0.0, abs=1e-12)
        for turn, step in zip(episode.turns, episode.step_rewards):
            assert step.token_index == turn.start + turn.completion_length - 1


def test_rpc_counts_are_the_calls_a_group_makes(services):
    policy, env = services
    counts = Counter()
    rollout = parse_config({"rollout": {"group_size": 4, "sampling": {"max_tokens": 16}}}).rollout
    player = GroupPlayer(Counted(policy, "policy", counts), Counted(env, "env", counts), rollout)
    # Building the player asked for the policy's info and rendered the template probe once.
    assert counts == {"policy/GetInfo": 1, "policy/ApplyChatTemplate": 1}
    counts.clear()
    task = env.list_tasks("math", split="train", limit=1)[0]
    episodes = player.play(task)
    # The tiny random model never answers right and math gives 3 tries: every episode
    # plays 3 turns; the env ends it at the third Step, so turns 1 and 2 get feedback.
    assert [len(e.turns) for e in episodes] == [3, 3, 3, 3] and not any(e.error for e in episodes)
    eos = set(policy.info().eos_token_ids)
    # Detokenize: once per end-of-turn token a completion stopped on before feedback
    # (ObservationTokens caches its text in the player).
    stopped_on = {
        e.token_ids[t.start + t.completion_length - 1]
        for e in episodes
        for t in e.turns[:-1]
        if t.finish_reason == FinishReason.FINISH_REASON_STOP and t.completion_length
        and e.token_ids[t.start + t.completion_length - 1] in eos
    }
    expected = {
        "env/CreateSession": 4,  # one per episode
        "env/Step": 4 * 3,  # one per episode-turn
        "env/CloseSession": 4,
        "policy/Generate": 3,  # one per lockstep turn for the whole group (the first with n = 4)
        # The group's prompts at once, then the group's feedback at once after turns 1 and 2.
        "policy/ApplyChatTemplate": 1 + 2,
        "policy/Tokenize": 2,  # the rendered feedback of the group, once per feedback turn
    }
    if stopped_on:
        expected["policy/Detokenize"] = len(stopped_on)
    assert counts == expected
    # The Generate intervals: one per lockstep turn, in order, with the sequences each sampled.
    assert [n for _, _, n in player.generations] == [4, 4, 4]
    assert all(a <= b for a, b, _ in player.generations)
    assert all(b1 <= a2 for (_, b1, _), (a2, _, _) in zip(player.generations, player.generations[1:]))


class _SessionLost:
    """The real env client, except that the first session is closed on the service just
    before its first Step (as after an env-service restart): that Step really fails."""

    def __init__(self, env):
        self.env = env
        self.lost: str | None = None

    def __getattr__(self, name):
        return getattr(self.env, name)

    def create_session(self, *args, **kwargs):
        reply = self.env.create_session(*args, **kwargs)
        self.lost = self.lost or reply.session_id
        return reply

    def step(self, session_id, *args, **kwargs):
        if session_id == self.lost:
            self.env.close_session(session_id)
        return self.env.step(session_id, *args, **kwargs)


def test_an_episode_cut_short_by_the_env_service_travels_flagged(services):
    from outrider.learner.batch import build_batch
    from outrider.proto.v1.common_pb2 import ItemStatus
    from outrider.proto.v1.trajectory_pb2 import INFRA_FAILURE_ENV_UNAVAILABLE, INFRA_FAILURE_NONE

    policy, env = services
    rollout = parse_config({"rollout": {"group_size": 4, "sampling": {"max_tokens": 16}}}).rollout
    player = GroupPlayer(policy, _SessionLost(env), rollout)
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    episodes = player.play(task)
    assign_rewards(task, episodes, rollout.reward)
    result = build_group(task, "rollout-lost-session", episodes)
    failed, *others = result.group.trajectories
    assert failed.infra_failure == INFRA_FAILURE_ENV_UNAVAILABLE and failed.status.code == ItemStatus.ERROR
    assert failed.status.message.startswith("Step: NOT_FOUND") and len(result.errors) == 1
    # Its one sampled turn is on record: the loss mask is exactly that completion.
    (turn,) = failed.turns
    assert sum(failed.loss_mask) == turn.completion_length > 0
    assert all(t.infra_failure == INFRA_FAILURE_NONE and t.status.code == ItemStatus.OK for t in others) and len(others) == 3
    assert build_batch([result.group]).valid.tolist() == [False, True, True, True]


def test_top_k_turns_record_their_support_and_the_learner_reproduces_their_logprobs(services):
    # Keep sampling mask end to end: rollout (top-k 5) → trajectory → learner log-probs.
    import torch

    from outrider.learner.batch import build_batch
    from outrider.learner.models import load_actor, token_logprobs

    policy, env = services
    rollout = parse_config({"rollout": {"group_size": 2, "sampling": {"max_tokens": 12, "top_k": 5}}}).rollout
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    episodes = GroupPlayer(policy, env, rollout).play(task)
    assign_rewards(task, episodes, rollout.reward)
    group = build_group(task, "rollout-top-k", episodes).group
    for trajectory in group.trajectories:
        for turn in trajectory.turns:
            assert (turn.sampling.temperature, turn.sampling.top_k, turn.sampling.top_p) == (1.0, 5, 1.0)
    batch = build_batch([group])
    actor = load_actor("tiny-random").eval()
    with torch.no_grad():
        masked, _ = token_logprobs(actor, batch)
        full, _ = token_logprobs(actor, batch, sampled_support=False)
    on = batch.mask.bool()
    # The tolerance of the sampled-vs-scored check above (float32 incremental decoding vs a
    # full forward; measured 1.8e-5 on these chat prompts); without the mask: > 0.1 off.
    assert (masked - batch.rollout_logprobs)[on].abs().max().item() < 1e-4
    assert (full - batch.rollout_logprobs)[on].abs().max().item() > 0.1
