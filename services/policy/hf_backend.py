"""HF transformers backend: batched decoding with a KV cache, for machines without vLLM.

One worker thread owns the model. Waiting requests are merged into batches of
up to `hf.max_batch_rows` rows (a row is one completion of one prompt): each
distinct prompt is prefilled once, its KV cache is repeated for its n samples,
and the batch decodes step by step, dropping finished rows from the cache.
A batch runs to completion before the next one starts (static batching: new
requests wait for the running batch, unlike vLLM's continuous batching).
Log-probabilities are log_softmax of the float32 logits: the raw model
distribution, before temperature and top-k/top-p.

Snapshots (policy.max_resident_versions > 1): `snapshot(version)` keeps a deep copy
of the model as it is (one more copy of the weights in memory), and rows pinned to
it decode with that copy. A batch holds rows of one model only, so a pinned request
and a latest one in the same queue run as two batches, in arrival order.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from outrider.services.policy.backend import (
    Backend,
    CompletionDelta,
    CompletionResult,
    LoadTimings,
    ModelInfo,
    SamplingSpec,
    WeightsNotApplied,
    WeightsUpdate,
)
from outrider.services.policy.hf_decode import Row, decode_rows
from outrider.services.policy.weights import read_checkpoint, read_file

log = logging.getLogger(__name__)


class _Job:
    """One generate call: its rows, and where their deltas/results go."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, prompts: list[list[int]], spec: SamplingSpec, stream: bool,
        snapshot: int | None = None,
    ):
        self.loop = loop
        self.snapshot = snapshot
        """The kept weights version its rows decode with (None: the served model)."""
        self.deltas: asyncio.Queue[CompletionDelta | BaseException] | None = asyncio.Queue() if stream else None
        self.done: asyncio.Future[list[list[CompletionResult]]] = loop.create_future()
        self.cancelled = False
        self.remaining = len(prompts) * spec.n
        self.results: list[list[CompletionResult | None]] = [[None] * spec.n for _ in prompts]

    def emit(self, delta: CompletionDelta) -> None:
        """Called from the worker thread."""
        if self.deltas is not None:
            self.loop.call_soon_threadsafe(self.deltas.put_nowait, delta)

    def finish_row(self, row: Row) -> None:
        """Called from the worker thread when a row ends."""
        self.results[row.prompt_index][row.completion_index] = row.result()
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._resolve)

    def fail(self, exc: BaseException) -> None:
        self.loop.call_soon_threadsafe(self._reject, exc)

    def _resolve(self) -> None:
        if not self.done.done():
            self.done.set_result(self.results)  # type: ignore[arg-type]

    def _reject(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
        if self.deltas is not None:
            self.deltas.put_nowait(exc)


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self,
        model_dir: Path,
        *,
        dtype: torch.dtype,
        device: str,
        max_context: int,
        eos_token_ids: tuple[int, ...],
        vocab_size: int,
        tokenizer,
        seed: int,
        max_batch_rows: int,
        score_batch_tokens: int,
    ):
        self.model_dir = model_dir
        self.dtype = dtype
        self.device = device
        self.max_context = max_context
        self.eos_token_ids = eos_token_ids
        self.vocab_size = vocab_size
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.score_batch_tokens = score_batch_tokens
        self._seeds = torch.Generator().manual_seed(seed)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-backend")
        self._pending: deque[tuple[_Job, Row]] = deque()
        self._running: list[_Job] = []
        self._wakeup: asyncio.Event | None = None
        self._scheduler: asyncio.Task | None = None
        self.model = None
        self.snapshots: dict[int, torch.nn.Module] = {}
        """Copies of earlier weights, by version (`snapshot`)."""

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            self.max_context, self.vocab_size, self.eos_token_ids, str(self.dtype).removeprefix("torch."), self.device
        )

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)
        self._wakeup = asyncio.Event()
        self._scheduler = asyncio.create_task(self._schedule(), name="hf-scheduler")

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=self.dtype)
        self.model = model.to(self.device).eval()
        log.info("hf backend: loaded %s (%s on %s)", self.model_dir, self.dtype, self.device)

    async def shutdown(self) -> None:
        # Rows of a running batch see `cancelled` at their next step and end as "abort".
        for job in self._running:
            job.cancelled = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        for job, _ in self._pending:
            job.fail(RuntimeError("the policy service is shutting down"))
        self._pending.clear()
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    async def snapshot(self, version: int) -> None:
        def keep() -> None:
            self.snapshots[version] = copy.deepcopy(self.model)

        await asyncio.get_running_loop().run_in_executor(self._executor, keep)

    async def drop_snapshot(self, version: int) -> None:
        self.snapshots.pop(version, None)

    def _model(self, snapshot: int | None):
        if snapshot is None:
            return self.model
        if snapshot not in self.snapshots:
            raise RuntimeError(f"no snapshot of weights version {snapshot} is kept (kept: {sorted(self.snapshots)})")
        return self.snapshots[snapshot]

    def _submit(self, prompts: list[list[int]], spec: SamplingSpec, stream: bool, snapshot: int | None = None) -> _Job:
        self._model(snapshot)  # refuse an unknown snapshot before queueing anything
        job = _Job(asyncio.get_running_loop(), prompts, spec, stream, snapshot)
        for p, prompt in enumerate(prompts):
            budget = min(spec.max_tokens, self.max_context - len(prompt))
            for j in range(spec.n):
                seed = spec.seed + j if spec.seed is not None else secrets.randbits(63)
                generator = torch.Generator(device=self.device).manual_seed(seed)
                self._pending.append((job, Row(p, j, prompt, spec, budget, generator)))
        assert self._wakeup is not None, "backend not started"
        self._wakeup.set()
        return job

    async def generate(
        self, prompts: list[list[int]], sampling: SamplingSpec, snapshot: int | None = None
    ) -> list[list[CompletionResult]]:
        job = self._submit(prompts, sampling, stream=False, snapshot=snapshot)
        try:
            return await asyncio.shield(job.done)
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    async def generate_stream(
        self, prompts: list[list[int]], sampling: SamplingSpec, snapshot: int | None = None
    ) -> AsyncIterator[CompletionDelta]:
        job = self._submit(prompts, sampling, stream=True, snapshot=snapshot)
        assert job.deltas is not None
        finished = 0
        try:
            while finished < len(prompts) * sampling.n:
                item = await job.deltas.get()
                if isinstance(item, BaseException):
                    raise item
                if item.finish_reason is not None:
                    finished += 1
                yield item
        finally:
            job.cancelled = finished < len(prompts) * sampling.n

    async def _schedule(self) -> None:
        """Take up to max_batch_rows waiting rows of one model (the first waiting row's), decode them, repeat."""
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, later = [], deque()
                model_of_batch = self._pending[0][0].snapshot
                while self._pending and len(batch) < self.max_batch_rows:
                    job, row = self._pending.popleft()
                    if job.cancelled:
                        row.finish("abort")
                        job.finish_row(row)
                        continue
                    if job.snapshot != model_of_batch:
                        later.append((job, row))
                        continue
                    batch.append((job, row))
                self._pending.extendleft(reversed(later))
                if batch:
                    self._running = list({id(job): job for job, _ in batch}.values())
                    try:
                        await loop.run_in_executor(self._executor, self._run_batch, batch)
                    finally:
                        self._running = []

    def _run_batch(self, batch: list[tuple[_Job, Row]]) -> None:
        jobs = {id(job): job for job, _ in batch}
        owners = {id(row): job for job, row in batch}
        try:
            decode_rows(
                self._model(batch[0][0].snapshot),
                [row for _, row in batch],
                device=self.device,
                eos_token_ids=self.eos_token_ids,
                tokenizer=self.tokenizer,
                is_cancelled=lambda row: owners[id(row)].cancelled,
                on_delta=lambda row, delta: owners[id(row)].emit(delta),
                on_finish=lambda row: owners[id(row)].finish_row(row),
            )
        except Exception as exc:  # noqa: BLE001 - the callers get the failure, the worker lives on
            log.exception("hf backend: batch failed")
            for job in jobs.values():
                job.fail(exc)

    async def score(self, sequences: list[tuple[list[int], int]]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        scored = await loop.run_in_executor(self._executor, self._score, sequences, False)
        return [logprobs for logprobs, _ in scored]

    async def score_with_entropies(self, sequences: list[tuple[list[int], int]]) -> list[tuple[list[float], list[float]]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._score, sequences, True)

    @torch.inference_mode()
    def _score(self, sequences: list[tuple[list[int], int]], entropies: bool) -> list[tuple[list[float], list[float]]]:
        """Right-padded forward passes (padding after a sequence cannot change its causal
        logits), in groups of similar length whose rows x longest stays under score_batch_tokens."""
        results: list[tuple[list[float], list[float]]] = [([], []) for _ in sequences]
        groups: list[list[int]] = [[]]
        for index in sorted(range(len(sequences)), key=lambda i: len(sequences[i][0])):
            if groups[-1] and (len(groups[-1]) + 1) * len(sequences[index][0]) > self.score_batch_tokens:
                groups.append([])
            groups[-1].append(index)
        for group in groups:
            for index, scored in zip(group, self._score_group([sequences[i] for i in group], entropies)):
                results[index] = scored
        return results

    def _score_group(self, sequences: list[tuple[list[int], int]], entropies: bool) -> list[tuple[list[float], list[float]]]:
        width = max(len(ids) for ids, _ in sequences)
        ids = torch.zeros((len(sequences), width), dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, (tokens, _) in enumerate(sequences):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        scored = []
        for row, (tokens, prompt_length) in enumerate(sequences):
            targets = torch.tensor(tokens[prompt_length:], dtype=torch.long, device=self.device)
            # position i holds the distribution of token i + 1
            window = logprobs[row, prompt_length - 1 : len(tokens) - 1]
            chosen = window.gather(-1, targets.unsqueeze(-1)).squeeze(-1).tolist()
            entropy = _entropy(window).tolist() if entropies else []
            scored.append((chosen, entropy))
        return scored

    async def load_weights(self, update: WeightsUpdate) -> LoadTimings:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._load_weights, update)

    @torch.inference_mode()
    def _load_weights(self, update: WeightsUpdate) -> LoadTimings:
        started = time.perf_counter()
        # Read everything before touching the model: a file that fails to read (truncated,
        # corrupt) leaves the served weights as they were.
        try:
            if update.path is not None:
                tensors = read_checkpoint(update.path)
            elif update.file is not None:
                tensors = read_file(update.file)
            else:
                tensors = dict(update.tensors)
        except Exception as exc:  # noqa: BLE001 - safetensors/torch raise many kinds
            raise WeightsNotApplied(f"reading the weights failed: {type(exc).__name__}: {exc}") from exc
        missing, unexpected = self.model.load_state_dict(tensors, strict=False)
        tied = {name for name in missing if name.endswith("lm_head.weight") and self.model.config.tie_word_embeddings}
        if unexpected or set(missing) - tied:
            # The schema check upstream makes this unreachable for well-formed models.
            raise RuntimeError(f"weights did not match the model: missing {missing}, unexpected {unexpected}")
        return LoadTimings(reload_seconds=time.perf_counter() - started)


def _entropy(logprobs: torch.Tensor) -> torch.Tensor:
    """H = −Σ_v p_v log p_v over the last (vocabulary) axis of log-probabilities; log p is
    clamped to a finite floor so that a token of probability 0 adds 0, not NaN."""
    return -(logprobs.exp() * logprobs.clamp_min(torch.finfo(logprobs.dtype).min)).sum(-1)
