"""`policy.dtype: auto` on a CPU: bfloat16 only where the CPU computes it natively."""

from __future__ import annotations

import torch

from outrider.services.policy.backend import cpu_has_native_bf16, resolve_dtype

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
COOPER_LAKE = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert not cpu_has_native_bf16(AVX2_ONLY)
    assert cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert cpu_has_native_bf16(COOPER_LAKE)
    assert not cpu_has_native_bf16("")


def test_auto_serves_a_half_precision_checkpoint_in_float32_without_native_bf16():
    assert resolve_dtype("auto", "bfloat16", "cpu", native_bf16=False) == torch.float32
    assert resolve_dtype("auto", "float16", "cpu", native_bf16=False) == torch.float32
    assert resolve_dtype("auto", "bfloat16", "cpu", native_bf16=True) == torch.bfloat16
    assert resolve_dtype("auto", "float16", "cpu", native_bf16=True) == torch.bfloat16
    assert resolve_dtype("auto", None, "cpu", native_bf16=True) == torch.float32


def test_an_explicit_dtype_is_kept_and_the_gpu_keeps_the_checkpoints():
    assert resolve_dtype("bfloat16", "bfloat16", "cpu", native_bf16=False) == torch.bfloat16
    assert resolve_dtype("float16", None, "cpu", native_bf16=False) == torch.bfloat16  # no fast float16 on CPU
    assert resolve_dtype("auto", "bfloat16", "cuda", native_bf16=False) == torch.bfloat16
    assert resolve_dtype("auto", "float16", "cuda", native_bf16=False) == torch.float16
