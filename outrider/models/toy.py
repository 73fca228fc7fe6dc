"""`tiny-random-chars`: a tiny random Llama over a character-level vocabulary.

For end-to-end tests that must show learning within minutes on a CPU. With
SmolLM2's 49k-token vocabulary a random model spreads its samples so thin
that any reward tied to token identity moves slowly; over ~100 characters the
same reward (say, "use vowels") concentrates on a handful of output rows and
a learner raises it in a few steps. The chat template is ChatML, as SmolLM2's,
so multi-turn episodes render the same way.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHARS = list(string.printable.replace("\x0b", "").replace("\x0c", "").replace("\r", ""))
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def char_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=SPECIALS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_random_llama(out: Path, tokenizer) -> None:
    """Save a 2-layer Llama (head_dim 64, as vLLM's CPU attention supports) with seed-0 weights.

    Shared by `tiny-random` (SmolLM2's tokenizer) and `tiny-random-chars`.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        # Wider than the usual 0.02 so next-token distributions are peaked:
        # greedy choices then have clear margins instead of near-ties.
        initializer_range=0.2,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def build_tiny_random_chars(out: Path) -> None:
    save_tiny_random_llama(out, char_tokenizer())
