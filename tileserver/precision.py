"""Which float precision the CPU runs a decoder's convolutions in.

bfloat16 autocast halves a convolution's time on CPUs that compute bf16 natively (AVX512-BF16,
AMX) and would be slower than fp32 where bf16 is emulated, so ``auto`` picks bf16 only on the
former. Each decoder family has its own setting: SR4 enhancer and learned-codec g_s.
"""
from __future__ import annotations

import os
from pathlib import Path

from tileserver.errors import CodecError

SR_PRECISION_ENV = "TILESERVER_SR_PRECISION"  # auto (default), fp32 or bf16
CODEC_PRECISION_ENV = "TILESERVER_CODEC_PRECISION"  # auto (default), fp32 or bf16
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The words of /proc/cpuinfo (its flags among them); empty where it cannot be read."""
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def native_bf16() -> bool:
    """True when /proc/cpuinfo lists a native bf16 instruction set."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def cpu_precision(env: str) -> str:
    """``bf16`` when $``env`` says so, or (``auto``) when the CPU has native bf16; else ``fp32``."""
    wanted = os.environ.get(env, "auto")
    if wanted not in ("auto", "fp32", "bf16"):
        raise CodecError(f"${env} must be auto, fp32 or bf16, not {wanted!r}")
    if wanted != "auto":
        return wanted
    return "bf16" if native_bf16() else "fp32"
