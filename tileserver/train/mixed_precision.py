"""bf16 autocast for a training step's heavy transforms, g_a and g_s.

On a CPU with AMX (Intel Xeon, amx_bf16) a trainer step of mbt2018-mean-light-hs N=64 N_s=80,
batch 2 of 256 px crops, took 198 ms with g_a and g_s in bf16 against 330 ms in fp32 (one
thread, bench/bench_train_precision.py), and a run trained to the same SSIM
(bench/results/train-precision-ab.md); with AVX512-BF16 alone, bf16 autocast gained nothing. The
hyperprior (h_a, h_s, both entropy models) stays in fp32, and so do the last layers of g_a (it
makes y, which is rounded and coded) and of g_s (it makes the pixels), as in the decoder's bf16
g_s (``tileserver.codecs.synthesis.TorchSynthesis``). Weights and optimiser state stay fp32.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch

PRECISIONS = ("fp32", "bf16")
BF16_TRANSFORMS = ("g_a", "g_s")


def _body_in_bf16(transform: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    *body, last = transform.children()
    with torch.autocast("cpu", torch.bfloat16):
        for layer in body:
            x = layer(x)
    return last(x.float())


@contextmanager
def transforms_in(net: torch.nn.Module, precision: str):
    """Within the block, ``net``'s g_a and g_s run their bodies in ``precision``.

    The modules' own forward comes back on exit, so copies and exports made outside the block
    (validation, ``codec-export``) see plain modules."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    transforms = [getattr(net, name) for name in BF16_TRANSFORMS] if precision == "bf16" else []
    for transform in transforms:
        transform.forward = partial(_body_in_bf16, transform)
    try:
        yield
    finally:
        for transform in transforms:
            del transform.forward
