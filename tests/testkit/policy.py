"""Policy service test kit: a real server on its own event-loop thread, and reference math.

    with PolicyServerThread(policy_config("hf")) as server:
        client = PolicyClient(server.address)

The server is the production one (`create_server`): gRPC and the OpenAI HTTP
API on port 0, a real backend. Running it on a separate thread lets tests use
synchronous clients (PolicyClient, openai, grpcurl, the CLI) against it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import torch

from outrider.config import PolicyServiceConfig


def policy_config(backend: str, **overrides) -> PolicyServiceConfig:
    """tiny-random in float32 (so backends agree to ~1e-5), context 512, metrics off."""
    data = {
        "model": "tiny-random",
        "backend": backend,
        "dtype": "float32",
        "limits": {"max_context": 512, "max_tokens": 256, "max_n": 16, "max_prompts": 16},
        "vllm": {"cpu_kv_cache_gib": 1, "max_num_seqs": 128},
        "server": {"metrics_port": None, "grace_s": 2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return PolicyServiceConfig.model_validate(data)


class PolicyServerThread:
    """Start a policy server in a background thread; stop it on exit."""

    def __init__(self, cfg: PolicyServiceConfig):
        self.cfg = cfg
        self.server = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="policy-server", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            from outrider.services.policy.server import create_server

            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.server = await create_server(self.cfg)
            await self.server.start()
            self._ready.set()
            await self._stop.wait()
            await self.server.stop(self.cfg.server.grace_s)

        try:
            asyncio.run(serve())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout_s: float = 600) -> PolicyServerThread:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"policy server did not start within {timeout_s} s")
        if self._error is not None:
            raise RuntimeError("policy server failed to start") from self._error
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=120)

    def call(self, coroutine, timeout_s: float = 120):
        """Run a coroutine on the server's loop (e.g. to inspect the core) and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}/v1"

    def __enter__(self) -> PolicyServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def hf_logprobs(model_dir: str | Path, sequences: list[tuple[list[int], int]]) -> list[list[float]]:
    """Reference: log_softmax of a plain HF forward pass, one sequence at a time, float32."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for ids, start in sequences:
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()
            logprobs = torch.log_softmax(logits, -1)
            out.append([logprobs[i - 1, ids[i]].item() for i in range(start, len(ids))])
    return out


def perturbed_checkpoint(source: Path, target: Path, scale: float = 0.05, seed: int = 1) -> dict[str, torch.Tensor]:
    """Copy an HF folder with every tensor plus scale * N(0, 1) noise; returns the new tensors."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".outrider-*"))
    generator = torch.Generator().manual_seed(seed)
    tensors = load_file(str(source / "model.safetensors"))
    noisy = {name: t + scale * torch.randn(t.shape, generator=generator, dtype=t.dtype) for name, t in tensors.items()}
    save_file(noisy, str(target / "model.safetensors"), metadata={"format": "pt"})
    return noisy


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    assert [len(x) for x in a] == [len(y) for y in b], "sequences differ in length"
    return max((abs(x - y) for row_a, row_b in zip(a, b) for x, y in zip(row_a, row_b)), default=0.0)


def memorizing_checkpoint(source: Path, target: Path, prompt: list[int], reply: list[int], *, lr: float = 1e-2,
                          margin: float = 3.0, max_steps: int = 600, seed: int = 0) -> int:
    """Copy an HF folder and train its weights (float32, Adam) until greedy decoding after
    `prompt` writes exactly `reply`: every teacher-forced position's argmax is the reply token
    by at least `margin` nats, so backends with different kernels agree on it. A real model
    that deterministically writes a known reply (e.g. a tool call), for end-to-end tests of
    what the server does with it. Returns the steps it took."""
    import shutil

    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".outrider-*"))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32).train()
    ids = torch.tensor([prompt + reply])
    targets = torch.tensor(reply)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(1, max_steps + 1):
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        chosen = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        others = logits.scatter(-1, targets.unsqueeze(-1), float("-inf")).max(-1).values
        if bool(((chosen - others) > margin).all()):
            break
        loss = torch.nn.functional.cross_entropy(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    else:
        raise RuntimeError(f"the reply was not memorized in {max_steps} steps")
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    return step
