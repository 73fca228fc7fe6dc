"""The LM-judge PRM, served: s_t = P(+) / (P(+) + P(-)) of a real causal LM equals a direct computation."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import torch

from outrider.config import RewardServiceConfig, ServerConfig
from outrider.config.reward import LMJudgePRMConfig
from outrider.proto.v1 import common_pb2, reward_pb2, reward_pb2_grpc
from outrider.services.reward.prm.lm_judge import judge_texts
from outrider.proto.chat import Message
from outrider.services.reward.prm.segmentation import segment
from outrider.services.reward.prm.train import byte_tokenizer
from outrider.services.reward.server import create_server

CONVERSATIONS = [
    [Message("user", "Compute (12 + 7) - 3."), Message("assistant", "12 + 7 = 19\n\n19 - 3 = 16")],
    [Message("user", "Compute 20 - 4."), Message("assistant", "20 - 4 = 61")],
    [Message("system", "Be brief."), Message("user", "Add 3."), Message("assistant", "1 + 3 = 4"), Message("user", "Again."), Message("assistant", "4 + 3 = 7\n\nso 7")],
]


@pytest.fixture(scope="module")
def judge_model(tmp_path_factory):
    """A small random Llama LM with a byte tokenizer ("+" and "-" are one token each)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("judge") / "model"
    LlamaForCausalLM(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


async def test_served_judge_scores_equal_direct_computation(judge_model):
    cfg = LMJudgePRMConfig(model=str(judge_model), batch_size=3, device="cpu", chat_template=False)
    built = await create_server(RewardServiceConfig(server=ServerConfig(metrics_port=None, grace_s=0), prm=cfg, shaping="last"))
    await built.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            items = [
                reward_pb2.StepsItem(id=str(i), conversation=[common_pb2.ChatMessage(role=m.role, content=m.content) for m in conv])
                for i, conv in enumerate(CONVERSATIONS)
            ]
            results = (await stub.ScoreSteps(reward_pb2.ScoreStepsRequest(items=items))).results
            info = await stub.GetInfo(reward_pb2.RewardInfoRequest())
    finally:
        await built.stop(0)
    assert info.prm == f"judge:{judge_model}"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(judge_model)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(judge_model))
    plus, minus = tokenizer("+", add_special_tokens=False)["input_ids"][0], tokenizer("-", add_special_tokens=False)["input_ids"][0]
    assert [len(r.scores) for r in results] == [2, 1, 3]
    for result, conv in zip(results, CONVERSATIONS, strict=True):
        direct = []
        for text in judge_texts(conv, segment(conv, "delimiter", "\n\n"), cfg.template, "+", "-"):
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            with torch.inference_mode():
                last = model(input_ids=ids).logits[0, -1].double()
            direct.append(torch.softmax(torch.stack([last[plus], last[minus]]), 0)[0].item())
        np.testing.assert_allclose(result.scores, direct, rtol=0, atol=1e-6)
        assert result.shaping == reward_pb2.SHAPING_LAST
        assert list(result.rewards) == [0.0] * (len(direct) - 1) + [result.scores[-1]]


def test_judge_prompt_holds_the_context_and_the_step():
    conv = CONVERSATIONS[2]
    texts = judge_texts(conv, segment(conv, "delimiter", "\n\n"), "{context}|{step}|{positive}{negative}", "+", "-")
    assert texts[0] == "system: Be brief.\nuser: Add 3.\nassistant: |1 + 3 = 4|+-"
    # The second step of the last turn sees the first one as context.
    assert texts[2] == "system: Be brief.\nuser: Add 3.\nassistant: 1 + 3 = 4\nuser: Again.\nassistant: 4 + 3 = 7\n\n|so 7|+-"


async def test_multi_token_answers_are_refused_at_start(judge_model):
    cfg = LMJudgePRMConfig(model=str(judge_model), positive="yes", chat_template=False)
    with pytest.raises(OSError, match="'yes' must be one token"):
        await create_server(RewardServiceConfig(server=ServerConfig(metrics_port=None), prm=cfg))


@pytest.mark.slow
def test_smollm2_judge_with_its_chat_template():
    """The built-in SmolLM2-135M-Instruct as the judge: prompts go through its chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from outrider.models import resolve_model
    from outrider.services.reward.prm.lm_judge import LMJudgePRM

    path = resolve_model("smollm2-135m-instruct")
    cfg = LMJudgePRMConfig(model="smollm2-135m-instruct", batch_size=4, device="cpu")
    judge = LMJudgePRM(path, cfg)
    conv = CONVERSATIONS[0]
    scores = judge.score([judge.encode(conv, segment(conv, "delimiter", "\n\n"))])[0]
    assert scores.shape == (2,) and np.all((scores > 0) & (scores < 1))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    plus, minus = tokenizer("+", add_special_tokens=False)["input_ids"], tokenizer("-", add_special_tokens=False)["input_ids"]
    assert len(plus) == len(minus) == 1
    for text, served in zip(judge_texts(conv, segment(conv, "delimiter", "\n\n"), cfg.template, "+", "-"), scores, strict=True):
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        assert rendered.rstrip().endswith("assistant")  # the judge answers as the assistant
        ids = torch.tensor([tokenizer(rendered, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            last = model(input_ids=ids).logits[0, -1].double()
        direct = torch.softmax(torch.stack([last[plus[0]], last[minus[0]]]), 0)[0].item()
        # Served in a padded batch of 2, direct alone: float32 matmuls of other shapes
        # through 30 layers move the probability by ~1e-6.
        assert served == pytest.approx(direct, abs=1e-5)
