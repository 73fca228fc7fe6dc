"""RewardService over gRPC: validate requests, delegate to RewardCore, build responses."""

from __future__ import annotations

from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
from outrider.serving import FailedPrecondition, InvalidArgument
from outrider.services.reward.core import Oversized, RewardCore, StepsJob
from outrider.services.reward.metrics import ITEM_ERRORS, ITEMS, PRM_STEPS
from outrider.proto.chat import Message
from outrider.services.reward.verifiers import VERIFIER_MODULES, VerifierInput

SHAPING_TO_PROTO = {
    "difference": reward_pb2.SHAPING_DIFFERENCE,
    "min": reward_pb2.SHAPING_MIN,
    "last": reward_pb2.SHAPING_LAST,
    "raw": reward_pb2.SHAPING_RAW,
}
SHAPING_FROM_PROTO = {v: k for k, v in SHAPING_TO_PROTO.items()}
MODE_TO_PROTO = {"turn": reward_pb2.Segmentation.BY_TURN, "delimiter": reward_pb2.Segmentation.BY_DELIMITER}
MODE_FROM_PROTO = {v: k for k, v in MODE_TO_PROTO.items()}
CODES = {name: common_pb2.ItemStatus.Code.Value(name) for name in ("OK", "ERROR", "TIMEOUT", "INVALID_INPUT")}


def _status(code: str, message: str = "", source: str = "") -> common_pb2.ItemStatus:
    return common_pb2.ItemStatus(code=CODES[code], message=message, source=source)


def _constraint(spec) -> common_pb2.RewardConstraint | None:
    if spec is None:
        return None
    return common_pb2.RewardConstraint(threshold=spec.threshold, at_least=spec.direction == "at_least")


def _count(method: str, code: str, source: str) -> None:
    ITEMS.labels(method, code).inc()
    if code != "OK":
        ITEM_ERRORS.labels(method, source, code).inc()


class RewardServicer(reward_pb2_grpc.RewardServiceServicer):
    def __init__(self, core: RewardCore):
        self.core = core
        self.limits = core.cfg.limits

    def _check_batch(self, items) -> None:
        if not items:
            raise InvalidArgument("items: empty batch")
        if len(items) > self.limits.max_batch_items:
            raise InvalidArgument(f"items: {len(items)} items, more than limits.max_batch_items ({self.limits.max_batch_items})")

    async def Score(self, request, context):
        self._check_batch(request.items)
        unknown = [name for name in request.verifiers if name not in VERIFIER_MODULES]
        if unknown:
            raise InvalidArgument(f"verifiers: unknown {unknown}; valid: {', '.join(VERIFIER_MODULES)}")
        inputs = []
        for index, item in enumerate(request.items):
            if len(item.response) > self.limits.max_response_chars:
                raise InvalidArgument(
                    f"items[{index}].response: {len(item.response)} characters, more than limits.max_response_chars ({self.limits.max_response_chars})"
                )
            inputs.append(
                VerifierInput(
                    response=item.response,
                    reference=item.reference,
                    prompt=item.prompt,
                    env=item.env,
                    task_id=item.task_id,
                    response_tokens=item.response_tokens,
                    conversation=tuple((m.role, m.content) for m in item.conversation),
                )
            )
        scores = await self.core.score(inputs, list(request.verifiers))
        results = []
        for item, score in zip(request.items, scores, strict=True):
            _count("Score", score.code, score.source)
            result = reward_pb2.ScoreResult(
                id=item.id,
                status=_status(score.code, score.message, score.source),
                components=[
                    reward_pb2.ComponentScore(
                        name=c.name, weight=c.weight, value=c.value, status=_status(c.code, "" if c.code == "OK" else c.detail, f"verifier:{c.name}"), detail=c.detail,
                        constraint=_constraint(c.constraint),
                    )
                    for c in score.components
                ],
            )
            if score.reward is not None:
                result.reward = score.reward
            results.append(result)
        return reward_pb2.ScoreResponse(results=results)

    async def ScoreSteps(self, request, context):
        self._check_batch(request.items)
        if self.core.prm is None:
            raise FailedPrecondition("no process reward model is configured (reward config `prm` is null)")
        jobs = []
        for index, item in enumerate(request.items):
            chars = sum(len(m.content) for m in item.conversation)
            if chars > self.limits.max_trajectory_chars:
                raise InvalidArgument(f"items[{index}].conversation: {chars} characters, more than limits.max_trajectory_chars ({self.limits.max_trajectory_chars})")
            mode = delimiter = None
            if item.HasField("segmentation"):
                seg = item.segmentation
                mode = MODE_FROM_PROTO.get(seg.mode)
                if seg.mode != reward_pb2.Segmentation.MODE_UNSPECIFIED and mode is None:
                    raise InvalidArgument(f"items[{index}].segmentation.mode: unknown value {seg.mode}")
                if mode == "delimiter" and not seg.delimiter:
                    raise InvalidArgument(f"items[{index}].segmentation.delimiter: empty (BY_DELIMITER needs one)")
                delimiter = seg.delimiter or None
            if item.shaping != reward_pb2.SHAPING_UNSPECIFIED and item.shaping not in SHAPING_FROM_PROTO:
                raise InvalidArgument(f"items[{index}].shaping: unknown value {item.shaping}")
            shaping = SHAPING_FROM_PROTO.get(item.shaping, self.core.cfg.shaping)
            messages = [Message.from_proto(m) for m in item.conversation]
            jobs.append(StepsJob(messages, self.core.segment(messages, mode, delimiter), shaping))
        try:
            outcomes = await self.core.score_steps(jobs)
        except Oversized as exc:
            index, message = exc.args
            raise InvalidArgument(f"items[{index}]: {message}") from None
        results = []
        for item, outcome in zip(request.items, outcomes, strict=True):
            source = "" if outcome.code == "OK" else "prm"
            _count("ScoreSteps", outcome.code, source)
            result = reward_pb2.StepScores(
                id=item.id,
                steps=[reward_pb2.StepSpan(message_index=s.message_index, char_start=s.char_start, char_end=s.char_end) for s in outcome.steps],
                shaping=SHAPING_TO_PROTO[outcome.shaping],
                status=_status(outcome.code, outcome.message, source),
            )
            if outcome.disagreement is not None:
                result.disagreement = outcome.disagreement
            if outcome.scores is not None:
                result.scores.extend(outcome.scores.tolist())
                result.rewards.extend(outcome.rewards.tolist())
                PRM_STEPS.inc(len(outcome.scores))
            results.append(result)
        return reward_pb2.ScoreStepsResponse(results=results)

    async def GetInfo(self, request, context):
        seg = self.core.cfg.segmentation
        return reward_pb2.RewardInfo(
            verifiers=[
                reward_pb2.ComponentScore(name=name if env == "*" else f"{env}/{name}", weight=weight) for env, name, weight in self.core.configured()
            ],
            prm=self.core.prm.describe() if self.core.prm is not None else "",
            segmentation=reward_pb2.Segmentation(mode=MODE_TO_PROTO[seg.mode], delimiter=seg.delimiter),
            shaping=SHAPING_TO_PROTO[self.core.cfg.shaping],
        )
