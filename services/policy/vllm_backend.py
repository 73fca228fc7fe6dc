"""vLLM backend: the async engine (`AsyncLLM`) with continuous batching.

Each prompt is one engine request with `n` samples; requests of all callers
share the engine's running batch. Log-probabilities come from vLLM's
`raw_logprobs` mode: log_softmax of the raw logits, before temperature and
top-k/top-p, the same quantity the HF backend and ScoreTokens return.

ScoreTokens is served from the engine's own weights with `prompt_logprobs`
(teacher-forced log-probabilities of every prompt token). The sequence's last
token is scored through `logprob_token_ids` at the first sampling step, so a
sequence of exactly `max_context` tokens fits the engine. With entropies, the
same request asks for the whole vocabulary at every position (`prompt_logprobs`
and `logprobs` = -1, in vLLM's flat layout; the engine allows it through
`max_logprobs=-1`): H = −Σ_v exp(l_v) l_v over those V log-probabilities. That
moves V floats per position out of the engine, as Python objects: such requests
are limited to `vllm.max_entropy_tokens` tokens and run one sequence at a time.

Weights updates reload in place through vLLM's layerwise `reload_weights`
(run in every worker by `vllm_worker.OutriderWorkerExtension`), then reset
the prefix cache so no KV block computed with old weights is reused. The
workers are other processes and read safetensors files themselves: a staged
file or a folder's files as they are, streamed tensors after they are written
to a staging file (shared memory when it has room; `outrider.models.staging`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import torch

from outrider.learner.algos.sampling_support import keep_mask, truncated_logprobs
from outrider.process import children_die_with_this_process
from outrider.services.policy.backend import (
    Backend,
    BackendDead,
    CompletionDelta,
    CompletionResult,
    LoadTimings,
    ModelInfo,
    SamplingSpec,
    TopLogprobs,
    WeightsNotApplied,
    WeightsUpdate,
)
from outrider.models.staging import owned_name, remove_orphans, staging_root
from outrider.services.policy.weights import safetensors_files, save_tensors

log = logging.getLogger(__name__)

WORKER_EXTENSION = "outrider.services.policy.vllm_worker.OutriderWorkerExtension"
_FINISH = {"stop": "stop", "length": "length", "abort": "abort"}


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(
        self,
        model_dir: Path,
        *,
        dtype: torch.dtype,
        device: str,
        max_context: int,
        eos_token_ids: tuple[int, ...],
        vocab_size: int,
        seed: int,
        options,
    ):
        self.model_dir = model_dir
        self.dtype = dtype
        self.device = device
        self.max_context = max_context
        self.eos_token_ids = eos_token_ids
        self.vocab_size = vocab_size
        self.seed = seed
        self.options = options
        self.engine = None
        self._entropy_lock: asyncio.Lock | None = None

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            self.max_context, self.vocab_size, self.eos_token_ids, str(self.dtype).removeprefix("torch."), self.device
        )

    def engine_args(self):
        from vllm.engine.arg_utils import AsyncEngineArgs

        cpu_only = {}
        if self.device == "cpu":
            # vLLM 0.32 on CPU kills its engine when a seeded request's prefill is chunked
            # (it rewinds the request's generator with `set_offset`, which CPU generators lack).
            # Whole-prompt prefills avoid that path; the token budget must then hold a full context.
            cpu_only = dict(enable_chunked_prefill=False, max_num_batched_tokens=max(self.max_context, 4096))
        return AsyncEngineArgs(
            model=str(self.model_dir),
            tokenizer=str(self.model_dir),
            dtype=str(self.dtype).removeprefix("torch."),
            max_model_len=self.max_context,
            seed=self.seed,
            enforce_eager=self.options.enforce_eager,
            enable_prefix_caching=self.options.enable_prefix_caching,
            max_num_seqs=self.options.max_num_seqs,
            tensor_parallel_size=self.options.tensor_parallel_size,
            gpu_memory_utilization=self.options.gpu_memory_utilization,
            logprobs_mode="raw_logprobs",
            # Full-vocabulary log-probabilities for ScoreTokens' entropies (requests that
            # sample never ask for more than the chosen token's).
            max_logprobs=-1,
            worker_extension_cls=WORKER_EXTENSION,
            disable_log_stats=True,
            **cpu_only,
        )

    def engine_environment(self) -> dict[str, str]:
        """Variables the engine process reads at start (set them before creating it)."""
        if self.device != "cpu":
            return {}
        # vLLM's default share of RAM for the KV cache fails on small hosts.
        env = {"VLLM_CPU_KVCACHE_SPACE": str(self.options.cpu_kv_cache_gib)}
        if self.options.cpu_reserved_cores is not None:
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(self.options.cpu_reserved_cores)
        return env

    async def start(self) -> None:
        from vllm.v1.engine.async_llm import AsyncLLM

        os.environ.update(self.engine_environment())
        # Blocks for the engine start (seconds; nothing is served yet). Not moved to a thread:
        # the engine client binds its asyncio machinery to the loop it is created in.
        # The EngineCore process dies with this one (PR_SET_PDEATHSIG), even when this one is
        # SIGKILLed; its workers follow through vLLM's own death pipe. Without it they stay
        # behind under init, holding the model and the KV cache.
        with children_die_with_this_process():
            self.engine = AsyncLLM.from_engine_args(self.engine_args())
        log.info("vllm backend: engine up for %s (%s on %s)", self.model_dir, self.dtype, self.device)

    async def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None

    def _params(self, spec: SamplingSpec, prompt_len: int, output_kind):
        from vllm import SamplingParams

        return SamplingParams(
            n=_engine_n(spec),
            temperature=spec.temperature,
            top_p=spec.top_p,
            top_k=spec.top_k,
            max_tokens=min(spec.max_tokens, self.max_context - prompt_len),
            stop=list(spec.stop) or None,
            stop_token_ids=list(spec.stop_token_ids) or None,
            seed=spec.seed,
            ignore_eos=spec.ignore_eos,
            # With top-k, the k most likely raw log-probs hold the whole support: enough to
            # renormalise over it (Completion.support_logprobs). Top-p alone is not reported.
            # The same ranked entries answer top_logprobs.
            logprobs=max(_support_width(spec), spec.top_logprobs),
            skip_special_tokens=True,
            output_kind=output_kind,
        )

    async def _run(self, prompt: list[int], params) -> AsyncIterator:
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError

        assert self.engine is not None, "backend not started"
        try:
            async for output in self.engine.generate(TokensPrompt(prompt_token_ids=prompt), params, uuid.uuid4().hex):
                yield output
        except EngineDeadError as exc:
            raise BackendDead(f"the vLLM engine died ({exc}); the policy service must be restarted") from exc

    async def generate(
        self, prompts: list[list[int]], sampling: SamplingSpec, snapshot: int | None = None
    ) -> list[list[CompletionResult]]:
        # No snapshots here (Backend.snapshot refuses), so the core never pins one.
        assert snapshot is None, "the vLLM backend keeps no earlier weights versions"
        from vllm.sampling_params import RequestOutputKind

        async def one(prompt: list[int]) -> list[CompletionResult]:
            final = None
            async for output in self._run(prompt, self._params(sampling, len(prompt), RequestOutputKind.FINAL_ONLY)):
                final = output
            assert final is not None
            results = [_result(c, sampling) for c in sorted(final.outputs, key=lambda c: c.index)]
            return results * (sampling.n // len(results))

        return list(await asyncio.gather(*(one(p) for p in prompts)))

    async def generate_stream(
        self, prompts: list[list[int]], sampling: SamplingSpec, snapshot: int | None = None
    ) -> AsyncIterator[CompletionDelta]:
        assert snapshot is None, "the vLLM backend keeps no earlier weights versions"
        from vllm.sampling_params import RequestOutputKind

        queue: asyncio.Queue[CompletionDelta | BaseException | None] = asyncio.Queue()

        async def pump(index: int, prompt: list[int]) -> None:
            try:
                params = self._params(sampling, len(prompt), RequestOutputKind.DELTA)
                copies = sampling.n // _engine_n(sampling)
                async for output in self._run(prompt, params):
                    for c in output.outputs:
                        for j in range(copies):
                            await queue.put(_delta(index, c, c.index + j, sampling))
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
                await queue.put(exc)
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(pump(i, p)) for i, p in enumerate(prompts)]
        done = 0
        try:
            while done < len(tasks):
                item = await queue.get()
                if item is None:
                    done += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def score(self, sequences: list[tuple[list[int], int]]) -> list[list[float]]:
        return list(await asyncio.gather(*(self._score_one(ids, start) for ids, start in sequences)))

    async def _score_one(self, ids: list[int], prompt_length: int) -> list[float]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if prompt_length == len(ids):
            return []
        params = SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=0, logprob_token_ids=[ids[-1]],
            output_kind=RequestOutputKind.FINAL_ONLY, detokenize=False,
        )
        final = None
        async for output in self._run(ids[:-1], params):
            final = output
        assert final is not None and final.prompt_logprobs is not None
        # prompt_logprobs[i] is the distribution at position i given ids[:i] (None for i = 0).
        scores = [final.prompt_logprobs[i][ids[i]].logprob for i in range(prompt_length, len(ids) - 1)]
        scores.append(final.outputs[0].logprobs[0][ids[-1]].logprob)
        return scores

    @property
    def entropy_token_limit(self) -> int | None:
        return self.options.max_entropy_tokens

    async def score_with_entropies(self, sequences: list[tuple[list[int], int]]) -> list[tuple[list[float], list[float]]]:
        # One sequence at a time, over all callers: each holds vocabulary x length Python
        # objects until its entropies are summed, so their memory must not add up.
        if self._entropy_lock is None:
            self._entropy_lock = asyncio.Lock()
        results = []
        async with self._entropy_lock:
            for ids, start in sequences:
                results.append(await self._score_entropies_one(ids, start))
        return results

    async def _score_entropies_one(self, ids: list[int], prompt_length: int) -> tuple[list[float], list[float]]:
        import numpy as np
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if prompt_length == len(ids):
            return [], []
        params = SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=-1, logprobs=-1, flat_logprobs=True,
            output_kind=RequestOutputKind.FINAL_ONLY, detokenize=False,
        )
        final = None
        async for output in self._run(ids[:-1], params):
            final = output
        assert final is not None and final.prompt_logprobs is not None
        vocab = self.vocab_size
        logprobs, entropies = [], []

        def position(flat, index: int, token: int) -> None:
            # Flat layout per position: the given (or sampled) token first, then all V tokens by rank.
            start, end = flat.start_indices[index], flat.end_indices[index]
            if end - start != vocab + 1:
                raise RuntimeError(f"vLLM returned {end - start - 1} log-probabilities at a position, expected the vocabulary's {vocab}")
            values = np.asarray(flat.logprobs[start + 1 : end], dtype=np.float64)
            entropies.append(float(-(np.exp(values) * np.maximum(values, np.finfo(np.float64).min)).sum()))
            if flat.token_ids[start] == token:
                logprobs.append(flat.logprobs[start])
            else:  # the sampled (greedy) token is not the one scored: find it among all V
                logprobs.append(flat.logprobs[start + 1 + flat.token_ids[start + 1 : end].index(token)])

        # prompt_logprobs[i] is the distribution at position i given ids[:i] (empty for i = 0).
        for i in range(prompt_length, len(ids) - 1):
            position(final.prompt_logprobs, i, ids[i])
        position(final.outputs[0].logprobs, 0, ids[-1])
        return logprobs, entropies

    async def load_weights(self, update: WeightsUpdate) -> LoadTimings:
        from vllm.v1.engine.exceptions import EngineDeadError

        assert self.engine is not None, "backend not started"
        staged = None
        stage = 0.0
        try:
            if update.file is not None:
                method, target = "outrider_load_weights", [str(update.file)]
            elif update.path is not None:
                files = safetensors_files(update.path)
                method, target = (
                    ("outrider_load_weights", [str(f) for f in files]) if files
                    else ("outrider_reload_weights", str(update.path))
                )
            else:
                started = time.perf_counter()
                try:
                    staged = await asyncio.to_thread(_stage, update.tensors)
                except OSError as exc:  # e.g. /dev/shm full: nothing reached the engine
                    raise WeightsNotApplied(f"staging the weights failed: {exc}") from exc
                stage = time.perf_counter() - started
                method, target = "outrider_load_weights", [str(staged)]
            started = time.perf_counter()
            await self.engine.collective_rpc(method, args=(target,))
            reloaded = time.perf_counter()
            await self.engine.reset_prefix_cache()
            return LoadTimings(stage, reloaded - started, time.perf_counter() - reloaded)
        except EngineDeadError as exc:
            raise BackendDead(f"the vLLM engine died during a weights update ({exc})") from exc
        finally:
            if staged is not None:
                staged.unlink(missing_ok=True)


def _stage(tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write streamed tensors where the workers (other processes) can read them: shared
    memory when it has room. Kept in the dtype they came in, so the cast to the served
    dtype happens in the loader exactly as for any checkpoint."""
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    root = staging_root(needed)
    remove_orphans(root)
    file = root / f"{owned_name('streamed')}+{uuid.uuid4().hex}.safetensors"
    save_tensors(tensors, file)
    return file


def _logprobs(completion) -> list[float]:
    return [entry[token].logprob for token, entry in zip(completion.token_ids, completion.logprobs or [])]


def _top_logprobs(completion, count: int) -> list[TopLogprobs]:
    """The `count` best-ranked entries at each position, most likely first. vLLM returns the
    sampled token with its own (1-based) rank besides the requested ranks 1..k, so rank <= count
    keeps exactly the top `count`; none at all when count is 0."""
    if not count:
        return []
    return [
        [(t, lp.logprob) for lp, t in sorted(
            ((lp, t) for t, lp in entry.items() if lp.rank is not None and lp.rank <= count),
            key=lambda pair: (pair[0].rank, -pair[0].logprob),
        )][:count]
        for entry in completion.logprobs or []
    ]


def _support_width(spec: SamplingSpec) -> int:
    """Raw log-probs to return per position: top_k where the support is top-k (within which
    any nucleus lies), else only the sampled token's."""
    return spec.top_k if spec.temperature > 0 and spec.top_k > 0 else 0


def _support_logprobs(completion, spec: SamplingSpec) -> list[float]:
    """log π_S(y) = z_y − logsumexp_S z at each position, S recomputed with the learner's rule
    (outrider.learner.algos.sampling_support) from the top-k raw log-probs (log-softmax
    values differ from logits by a per-position constant, which neither S nor π_S sees)."""
    k = _support_width(spec)
    if not k:
        return []
    out = []
    for token, entry in zip(completion.token_ids, completion.logprobs or []):
        # The k best (1-based ranks) and the sampled token, which a tie may rank k + 1.
        ranked = sorted((lp.rank or k, t, lp.logprob) for t, lp in entry.items() if t == token or (lp.rank or k + 1) <= k)
        ids = [t for _, t, _ in ranked]
        z = torch.tensor([[v for _, _, v in ranked]], dtype=torch.float32)
        keep = keep_mask(z, torch.tensor([spec.temperature]), torch.tensor([0]), torch.tensor([spec.top_p]))
        keep[0, ids.index(token)] = True
        out.append(float(truncated_logprobs(z, torch.tensor([ids.index(token)]), keep)[0]))
    return out


def _result(completion, spec: SamplingSpec) -> CompletionResult:
    stop = completion.stop_reason if isinstance(completion.stop_reason, str) else ""
    return CompletionResult(
        list(completion.token_ids), _logprobs(completion), _FINISH.get(completion.finish_reason, "abort"), stop,
        completion.text, _support_logprobs(completion, spec), _top_logprobs(completion, spec.top_logprobs),
    )


def _engine_n(spec: SamplingSpec) -> int:
    """vLLM refuses n > 1 with greedy sampling; greedy samples are identical, so one is
    computed and copied."""
    return 1 if spec.temperature == 0 else spec.n


def _delta(prompt_index: int, completion, completion_index: int, spec: SamplingSpec) -> CompletionDelta:
    finish = _FINISH.get(completion.finish_reason, "abort") if completion.finish_reason else None
    stop = completion.stop_reason if isinstance(completion.stop_reason, str) else ""
    return CompletionDelta(
        prompt_index, completion_index, list(completion.token_ids), _logprobs(completion), completion.text, finish, stop,
        _top_logprobs(completion, spec.top_logprobs),
    )
