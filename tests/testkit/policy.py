"""Policy service test kit: a real server on its own event-loop thread, and reference math.

    with PolicyServerThread(policy_config("hf")) as server:
        client = PolicyClient(server.address)

The server is the production one (`create_server`): gRPC and the OpenAI HTTP
API on port 0, a real backend, on a thread of its own (PolicyServerThread lives in
outrider.services.policy.inprocess, which benches use too).
"""

from __future__ import annotations

from pathlib import Path

import torch

from outrider.config import PolicyServiceConfig
from outrider.services.policy.inprocess import PolicyServerThread


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
