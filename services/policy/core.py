"""The policy service's logic, shared by the gRPC servicer and the OpenAI HTTP API.

PolicyCore owns the backend, the prompt renderer, the weights version and
admission control. Front ends convert their wire formats to plain values,
call it, and convert back; validation errors surface as `ServiceError`s.

Resident versions (`policy.max_resident_versions` = N > 1, docs/self-play.md): before a
weights load replaces the served weights, the backend keeps a copy of them
(`Backend.snapshot`), so Generate can be pinned to any of the N - 1 versions before the
served one; the oldest is dropped first, and before the copy is made, so at most N copies
of the weights are ever held. Pinned calls hold the version gate like any other, so no
copy is dropped under a call that uses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import contextmanager
from dataclasses import dataclass

from outrider.config.policy import PolicyServiceConfig
from outrider.serving import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable, Unimplemented
from outrider.services.policy import validation
from outrider.services.policy.backend import (
    Backend,
    BackendDead,
    CompletionDelta,
    CompletionResult,
    EntropiesUnsupported,
    LoadTimings,
    SamplingSpec,
    WeightsNotApplied,
    WeightsUpdate,
)
from outrider.services.policy.prompts import PromptRenderer
from outrider.services.policy.versioning import VersionGate
from outrider.services.policy.weights import WeightsSchema

log = logging.getLogger(__name__)


@dataclass
class UpdateOutcome:
    version: int
    previous_version: int
    load_seconds: float
    timings: LoadTimings


class PolicyCore:
    def __init__(self, cfg: PolicyServiceConfig, backend: Backend, renderer: PromptRenderer, schema: WeightsSchema):
        self.cfg = cfg
        self.limits = cfg.limits
        self.backend = backend
        self.renderer = renderer
        # Prompts that cannot fit the served context are refused on their byte length, before
        # tokenizing (PromptRenderer.check_bytes): every front end's text goes through it.
        renderer.max_context = backend.info.max_context
        self.schema = schema
        self.gate = VersionGate()
        self.kept: list[int] = []
        """Earlier weights versions the backend holds a copy of, newest first (at most
        max_resident_versions - 1)."""
        self._in_flight = 0
        self._broken: str | None = None
        self.on_dead: Callable[[], None] = lambda: None
        """Called once when the backend dies (the server marks its health NOT_SERVING)."""
        self.sessions = None
        """Captured agent sessions (`capture.CapturedSessions`); None when capture is off."""

    @property
    def model_name(self) -> str:
        return self.cfg.model_name

    @property
    def max_context(self) -> int:
        return self.backend.info.max_context

    @property
    def version(self) -> int:
        return self.gate.version

    @property
    def resident_versions(self) -> list[int]:
        """Versions Generate can be pinned to, newest (the served one) first."""
        return [self.gate.version, *self.kept]

    def _pinned(self, version: int | None, served: int) -> int | None:
        """The backend snapshot a call pinned to `version` uses (None: the served weights)."""
        if version is None or version == served:
            return None
        if version in self.kept:
            return version
        resident = ", ".join([f"{served} (served)", *map(str, self.kept)])
        raise NotFound(
            f"policy_version: version {version} is not resident; resident versions: {resident} "
            f"(policy.max_resident_versions = {self.cfg.max_resident_versions})"
        )

    @property
    def unavailable_reason(self) -> str | None:
        """Why calls are refused (dead backend, half-loaded weights); None while serving."""
        return self._broken

    @property
    def in_flight(self) -> int:
        """Admitted Generate/ScoreTokens calls (running or waiting for a weights swap)."""
        return self._in_flight

    @contextmanager
    def admitted(self):
        """Count a call against limits.max_concurrent_requests, or refuse it now."""
        if self._broken is not None:
            raise Unavailable(self._broken)
        if self._in_flight >= self.limits.max_concurrent_requests:
            raise ResourceExhausted(
                f"overloaded: {self._in_flight} requests in flight, the limit is "
                f"{self.limits.max_concurrent_requests} (limits.max_concurrent_requests)",
                retry_after_ms=self.limits.overload_retry_after_ms,
            )
        self._in_flight += 1
        try:
            yield
        except BackendDead as exc:
            self._mark_dead(str(exc))
            raise Unavailable(str(exc)) from exc
        finally:
            self._in_flight -= 1

    def _mark_dead(self, reason: str) -> None:
        if self._broken != reason:
            log.error("backend dead: %s", reason)
            self._broken = reason
            self.on_dead()

    def check_prompts(self, prompts: list[list[int]]) -> None:
        validation.check_prompt_count(len(prompts), self.limits)
        for i, ids in enumerate(prompts):
            validation.check_prompt_ids(ids, self.max_context, f"prompts[{i}]")

    async def generate(
        self, prompts: list[list[int]], spec: SamplingSpec, version: int | None = None
    ) -> tuple[list[list[CompletionResult]], int]:
        """Completions and the version that generated them: `version` when given (it must be
        resident, else NOT_FOUND), else the served one."""
        self.check_prompts(prompts)
        with self.admitted():
            async with self.gate.reading() as served:
                snapshot = self._pinned(version, served)
                if snapshot is None:
                    return await self.backend.generate(prompts, spec), served
                return await self.backend.generate(prompts, spec, snapshot=snapshot), snapshot

    async def generate_stream(
        self, prompts: list[list[int]], spec: SamplingSpec, version: int | None = None
    ) -> AsyncIterator[tuple[CompletionDelta, int]]:
        self.check_prompts(prompts)
        with self.admitted():
            async with self.gate.reading() as served:
                snapshot = self._pinned(version, served)
                if snapshot is None:
                    stream = self.backend.generate_stream(prompts, spec)
                else:
                    stream = self.backend.generate_stream(prompts, spec, snapshot=snapshot)
                version = served if snapshot is None else snapshot
                try:
                    async for delta in stream:
                        yield delta, version
                finally:
                    await stream.aclose()

    async def score(
        self, sequences: list[tuple[list[int], int]], entropies: bool = False
    ) -> tuple[list[tuple[list[float], list[float]]], int]:
        """(logprobs, entropies) per sequence (entropies empty unless asked for), and the version."""
        validation.check_prompt_count(len(sequences), self.limits, "sequences")
        for i, (ids, prompt_length) in enumerate(sequences):
            validation.check_score_sequence(ids, prompt_length, self.max_context, f"sequences[{i}]")
            self.renderer.check_ids(ids, f"sequences[{i}].token_ids")
        limit = self.backend.entropy_token_limit
        if entropies and limit is not None:
            for i, (ids, _) in enumerate(sequences):
                if len(ids) > limit:
                    raise InvalidArgument(
                        f"sequences[{i}].token_ids: {len(ids)} tokens exceed {limit}, the longest sequence the "
                        f"{self.backend.name} backend scores with return_entropies (vllm.max_entropy_tokens)"
                    )
        with self.admitted():
            async with self.gate.reading() as version:
                if not entropies:
                    return [(logprobs, []) for logprobs in await self.backend.score(sequences)], version
                try:
                    return await self.backend.score_with_entropies(sequences), version
                except EntropiesUnsupported as exc:
                    raise Unimplemented(f"return_entropies: {exc}") from None

    async def _load(self, version: int, update: WeightsUpdate) -> LoadTimings:
        try:
            timings = await self.backend.load_weights(update)
        except BackendDead as exc:
            self._mark_dead(str(exc))
            raise Unavailable(str(exc)) from exc
        except WeightsNotApplied as exc:
            # Nothing changed: the old weights go on serving under their version.
            raise InvalidArgument(f"weights update to version {version} not applied: {exc}; "
                                  f"version {self.gate.version} still serves") from exc
        except BaseException as exc:
            # The weights may be half replaced: serve nothing until a complete update lands.
            self._broken = (
                f"weights update to version {version} failed midway ({type(exc).__name__}: {exc}); "
                f"the model is in an unknown state until a weights update succeeds"
            )
            raise
        self._broken = None
        return timings

    def check_version(self, version: int) -> None:
        """Versions increase, by at most `max_version_jump` per update (served < version <= served + jump)."""
        served = self.gate.version
        if version <= served:
            raise FailedPrecondition(
                f"header.version: {version} is not newer than the served version {served}; weights versions must increase"
            )
        if version - served > self.cfg.max_version_jump:
            raise InvalidArgument(
                f"header.version: {version} is {version - served} above the served version {served}; "
                f"an update may raise it by at most max_version_jump ({self.cfg.max_version_jump})"
            )

    async def _keep(self, previous: int) -> bool:
        """Under the write hold, before a load: copy the served weights when older versions
        are kept (the oldest copy dropped first, so at most N exist); True when copied."""
        keep = self.cfg.max_resident_versions - 1
        if keep == 0 or self._broken is not None:
            return False  # weights in an unknown state are not worth keeping
        while len(self.kept) >= keep:
            await self.backend.drop_snapshot(self.kept.pop())
        await self.backend.snapshot(previous)
        return True

    def _served(self, version: int, kept: bool) -> None:
        if kept:
            self.kept.insert(0, self.gate.version)
        self.gate.version = version

    async def update_weights(self, version: int, update: WeightsUpdate) -> UpdateOutcome:
        """Pause, swap, resume: new calls wait from now, in-flight calls finish on the old
        version, the weights load, the version bumps, calls go on.

        A caller that gives up (its deadline passes, it cancels) while in-flight calls drain
        changes nothing: the hold is released, the old weights serve under their version.
        Once the load has begun it runs to its end under the hold, whatever the caller does:
        cut short, it would leave the weights half replaced. Finished, it counts (the version
        names what is served; GetInfo tells a caller that timed out)."""
        self.check_version(version)
        received = time.perf_counter()
        async with self.gate.writing():
            self.check_version(version)  # another update may have won while this one waited
            previous = self.gate.version
            kept = await self._keep(previous)
            load = asyncio.ensure_future(self._load(version, update))
            try:
                timings = await asyncio.shield(load)
            except asyncio.CancelledError:
                await asyncio.wait([load])
                if not load.cancelled() and load.exception() is None:
                    self._served(version, kept)
                    log.warning("weights version %d -> %d loaded after its caller gave up", previous, version)
                elif kept:
                    await self.backend.drop_snapshot(previous)
                raise
            except BaseException:
                if kept:
                    await self.backend.drop_snapshot(previous)
                raise
            self._served(version, kept)
        seconds = time.perf_counter() - received
        log.info("weights version %d -> %d loaded in %.2f s", previous, version, seconds)
        return UpdateOutcome(version, previous, seconds, timings)
