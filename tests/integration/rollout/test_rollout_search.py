"""Search rollouts end to end: the tiny test model behind a real policy service, the math env,
and a reward service serving a real scalar-head PRM (the tiny scorer, seeded, untrained:
its values are arbitrary but real, which is all the plumbing needs)."""

from __future__ import annotations

from collections import Counter

import pytest
import redis

from outrider.clients.env import EnvClient
from outrider.clients.policy import PolicyClient
from outrider.clients.reward import RewardClient
from outrider.config import parse_config
from outrider.proto.v1 import common_pb2, reward_pb2, trajectory_pb2
from outrider.rollout.episodes import build_group
from outrider.rollout.rewards import assign_rewards
from outrider.rollout.rpcs import Counted
from outrider.rollout.search_play import SearchPlayer
from outrider.rollout.worker import Rollouts
from outrider.services.reward.prm import train as prm_train
from outrider.stack import LocalStack
from outrider.transport import RedisReceiver, group_problem

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    tokenizer = prm_train.byte_tokenizer()
    prm = prm_train.save_scorer(prm_train.tiny_scorer(tokenizer, seed=0), tokenizer, root / "prm", prm_train.TrainSettings(), {})
    run = parse_config(
        {
            "name": "search",
            "output_dir": str(root),
            "stack": {"services": ["policy", "env", "reward"]},
            "policy": {"backend": "hf", "model": "tiny-random", "dtype": "float32", "http_port": None},
            "env": {"builtin_envs": ["math"]},
            "reward": {"prm": {"type": "scalar-head", "model": str(prm), "device": "cpu"}},
        }
    )
    with LocalStack(run, root / "stack") as stack, pytest.MonkeyPatch.context() as patch:
        # In-process rollouts (the worker test) present the stack's credentials as a worker would.
        for name, value in stack.child_env("client").items():
            patch.setenv(name, value)
        addresses, auth = stack.addresses(), stack.credentials()
        with (
            PolicyClient(addresses["policy"], credentials=auth) as policy,
            EnvClient(addresses["env"], credentials=auth) as env,
            RewardClient(addresses["reward"], credentials=auth) as reward,
        ):
            yield policy, env, reward, (run, stack)


def _rollout(search: dict):
    return parse_config({"rollout": {"sampling": {"max_tokens": 24}, "max_episode_tokens": 1024, "search": search}}).rollout


@pytest.mark.parametrize("search", [
    {"mode": "beam", "width": 2, "expansions": 2, "max_steps": 3, "step_tokens": 8, "token_budget": 60},
    {"mode": "mcts", "width": 3, "expansions": 2, "max_steps": 3, "step_tokens": 8, "token_budget": 60, "simulations": 6},
])
def test_a_search_episode_end_to_end(services, search):
    policy, env, reward, _ = services
    rollout = _rollout(search)
    counts = Counter()
    player = SearchPlayer(Counted(policy, "policy", counts), Counted(env, "env", counts), Counted(reward, "reward", counts), rollout)
    # No delimiter configured: the reward service's own segmentation delimiter.
    assert player.delimiter == "\n\n" and counts == {"reward/GetInfo": 1}
    counts.clear()
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    episodes = player.play(task, seed=3)
    stats = player.search
    assert not [e.error for e in episodes if e.error]
    assert max(stats["steps"]) >= 2, "the search went past its first step"
    assert 2 <= len(episodes) <= search["width"] and stats["mode"] == search["mode"]
    # Compute: what the search counted is what crossed the wire, within the budget.
    assert stats["generated_tokens"] <= search["token_budget"]
    assert counts["policy/Generate"] == stats["policy_calls"] and counts["reward/ScoreSteps"] == stats["prm_calls"]
    assert counts["policy/Detokenize"] == stats["policy_calls"]  # one per proposal call, for the steps' texts
    # One session for the search (reused by the first trajectory), one per further trajectory.
    assert counts["env/CreateSession"] == len(episodes) == counts["env/CloseSession"] and counts["env/Step"] == len(episodes)

    for episode, steps in zip(episodes, stats["steps"], strict=True):
        (turn,) = episode.turns
        ids, mask = episode.token_ids, episode.loss_mask
        # The mask is exactly the policy's own tokens: the prompt is masked, every sampled token is not.
        assert turn.start == episode.prompt_length and len(ids) == episode.prompt_length + turn.completion_length
        assert mask == [False] * episode.prompt_length + [True] * turn.completion_length
        assert 1 <= turn.completion_length <= rollout.sampling.max_tokens
        assert len(turn.segments) == steps and all(1 <= s.length <= search["step_tokens"] for s in turn.segments)
        assert sum(s.length for s in turn.segments) == turn.completion_length
        # Tokens as sampled, with the sampler's log-probs: teacher forcing gives the same.
        scored = policy.score_tokens([(ids, turn.start)]).sequences[0].logprobs
        assert max(abs(a - b) for a, b in zip(scored, episode.logprobs[turn.start :], strict=True)) < 1e-4
        assert episode.messages[-1].role == "assistant"
        assert policy.detokenize([ids[turn.start :]])[0] == episode.messages[-1].content
    # The recorded value of each kept trajectory is the PRM's last step score of its text.
    items = [
        reward_pb2.StepsItem(
            id=str(i), conversation=list(e.messages),
            segmentation=reward_pb2.Segmentation(mode=reward_pb2.Segmentation.BY_DELIMITER, delimiter="\n\n"),
        )
        for i, e in enumerate(episodes)
    ]
    direct = [r.scores[-1] for r in reward.score_steps(items)]
    assert stats["values"] == pytest.approx(direct, abs=1e-6)
    # The best-of-search answer: finished trajectories first, then the highest value.
    finished = [e.turns[0].finish_reason == common_pb2.FinishReason.FINISH_REASON_STOP or e.turns[0].completion_length == rollout.sampling.max_tokens for e in episodes]
    best = stats["best"]
    assert all((finished[best], stats["values"][best]) >= (f, v) for f, v in zip(finished, stats["values"]))

    # The group the learner trains on.
    assign_rewards(task, episodes, rollout.reward)
    result = build_group(task, "search-1", episodes)
    assert result.errors == [] and group_problem(result.group) is None
    assert all(t.outcome_reward == 0.0 and not t.solved for t in result.group.trajectories)  # a random model


def test_the_worker_plays_a_search_group_sends_it_and_logs_its_compute(services):
    policy, env, _, (run, stack) = services
    search = {"mode": "beam", "width": 2, "expansions": 2, "max_steps": 2, "step_tokens": 6, "token_budget": 40}
    wired = run.model_copy(update={
        "rollout": _rollout(search),
        "stack": run.stack.model_copy(update={"addresses": stack.addresses()}),
        "redis": run.redis.model_copy(update={"url": stack.redis.url}),
    })
    task = env.list_tasks("math", split="train", limit=1, include_reference=True)[0]
    rollouts = Rollouts(wired)
    assert isinstance(rollouts.player, SearchPlayer)
    summary = rollouts.play(task, "search-g0000001", seed=1)
    assert summary["sent"] is True and summary["errors"] == [] and summary["trajectories"] == 2
    compute = summary["search"]
    # Depth 0: 4 proposals of at most min(6, ⌊40/4⌋) = 6 tokens; depth 1: 2 beams × 2, at most
    # min(6, ⌊(40 − used)/4⌋) each: never more than 40 in all.
    assert compute["mode"] == "beam" and compute["policy_calls"] == 2 and compute["prm_calls"] == 2
    assert compute["proposals"] == 8 and compute["generated_tokens"] <= 40
    # The RPC counts of the group: the search's calls, plus the outcome Steps.
    assert summary["rpcs"]["policy/Generate"] == 2 and summary["rpcs"]["reward/ScoreSteps"] == 2
    assert summary["rpcs"]["env/Step"] == 2
    # What the learner reads: the group on the bus, its loss mask the sampled tokens of the one turn.
    group = _sent(stack, wired, "search-g0000001")
    assert group_problem(group) is None and len(group.trajectories) == 2
    for trajectory in group.trajectories:
        (turn,) = trajectory.turns
        assert list(trajectory.loss_mask) == [False] * trajectory.prompt_length + [True] * turn.completion_length
    assert summary["tokens"] == sum(t.turns[0].completion_length for t in group.trajectories)


def _sent(stack, run, group_id):
    client = redis.Redis.from_url(stack.redis.url)
    bus = RedisReceiver(client, run.bus, name="audit")
    entries = [fields for _, fields in client.xrange(bus.keys.stream) if fields[b"gid"].decode() == group_id]
    assert len(entries) == 1
    return trajectory_pb2.TrajectoryGroup.FromString(entries[0][b"data"])


class _TokenTally:
    """The policy client, counting the completion tokens its Generate replies carry."""

    def __init__(self, policy):
        self.policy, self.tokens, self.calls = policy, 0, 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, *args, **kwargs):
        reply = self.policy.generate(*args, **kwargs)
        self.calls += 1
        self.tokens += sum(len(c.token_ids) for r in reply.results for c in r.completions)
        return reply


def test_best_of_search_evaluation_samples_one_search_per_sample(services):
    from outrider.proto.v1 import eval_pb2
    from outrider.rollout.evaluation import evaluate_task

    policy, env, reward, _ = services
    # The run's rollout.search is off: the request's mode turns it on with these settings.
    rollout = _rollout({"width": 2, "expansions": 2, "max_steps": 2, "step_tokens": 6, "token_budget": 40})
    task = env.list_tasks("math", split="test", limit=1)[0]
    request = eval_pb2.EvalTaskRequest(checkpoint="base", task=task, samples=3, seed=5, search="beam", max_solutions=3)
    tally = _TokenTally(policy)
    result = evaluate_task(request, tally, env, rollout, reward)
    assert result.errors == 0 and result.samples == 3, list(result.error_messages)
    # Every proposal's tokens count, counted here from the wire: not only the kept answers'.
    assert result.generated_tokens == tally.tokens > 0
    # Beam W=2, E=2: one Generate per depth (4 first steps, then 2 beams x 2), 2 depths.
    assert 3 <= tally.calls <= 6
    assert result.correct == 0  # a random model; the solved count is the best answers'
    with pytest.raises(ValueError, match="needs the reward service"):
        evaluate_task(request, policy, env, rollout, None)
