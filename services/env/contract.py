"""The Step contract every environment's reply is held to before anyone sees it.

A reply that breaks it is never passed on as a reward: the env service answers
status ERROR (source `env:NAME`, a message naming the broken field), done, no
reward, and counts it like any other environment failure. The rollout then drops
the episode as an infrastructure failure (`INFRA_FAILURE_ENV_ERROR`), so a
remote environment that forgets its reward cannot teach the policy that the
episode was worth 0.

With status OK a reply must have
  * `reward`, a finite number (0 is a reward; "no reward" is an error);
  * the episode's rewards summing to at most `spec.reward.max_reward`;
  * `info.process_score`, when present, in [0, 1] and declared by
    `spec.reward.process_signals`;
  * `turn` = the turns the service has stepped, this one included.
A reply whose status is unset (code CODE_UNSPECIFIED) breaks it too: silence is
not success. A reply that says ERROR, TIMEOUT or INVALID_INPUT is a failure as
sent: it is made done and loses any reward it carried (a failed step has none).
"""

from __future__ import annotations

import math

from outrider.proto.v1 import common_pb2, env_pb2

OK = common_pb2.ItemStatus.OK
ERROR = common_pb2.ItemStatus.ERROR
UNSPECIFIED = common_pb2.ItemStatus.CODE_UNSPECIFIED
# Rewards of 1/N summed N times land a few ulps above 1.
_SUM_TOLERANCE = 1e-9


def step_problem(spec: env_pb2.EnvSpec, response: env_pb2.StepResponse, turns: int, total_reward: float) -> str | None:
    """Why `response` breaks the Step contract (None: it keeps it). `turns` and
    `total_reward`: the session's turns and summed rewards before this step."""
    if response.status.code == UNSPECIFIED:
        return "status: unset (a Step reply says OK, or ERROR with a message; silence is not success)"
    if response.status.code != OK:
        return None
    if not response.HasField("reward"):
        return "reward: absent with status OK (a step that worked has a reward, 0 included; one that failed says ERROR)"
    if not math.isfinite(response.reward):
        return f"reward: {response.reward} is not a finite number"
    total, cap = total_reward + response.reward, spec.reward.max_reward
    if total > cap + _SUM_TOLERANCE * max(1.0, abs(cap)):
        return f"reward: the episode's rewards sum to {total:g}, above spec.reward.max_reward ({cap:g})"
    if response.info.HasField("process_score"):
        score = response.info.process_score
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            return f"info.process_score: {score} is not in [0, 1]"
        if not spec.reward.process_signals:
            return "info.process_score: given, but the spec does not declare process signals (set reward.process_signals)"
    if response.turn != turns + 1:
        return f"turn: {response.turn}, expected {turns + 1} (turns count from 1, this one included)"
    return None


def checked_step(
    spec: env_pb2.EnvSpec, response: env_pb2.StepResponse, turns: int, total_reward: float, where: str
) -> env_pb2.StepResponse:
    """`response` if it keeps the contract; else the ERROR reply that replaces it.
    `where` names the environment in the message ("remote environment 'x' at host:port")."""
    source = f"env:{spec.name}"
    problem = step_problem(spec, response, turns, total_reward)
    if problem is not None:
        status = common_pb2.ItemStatus(code=ERROR, message=f"{where} broke the Step contract: {problem}", source=source)
        return env_pb2.StepResponse(done=True, status=status, turn=turns + 1)
    if response.status.code != OK:
        response.done = True
        response.ClearField("reward")
        response.turn = turns + 1
        response.status.source = response.status.source or source
    return response
