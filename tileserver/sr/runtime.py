"""Runners for an enhancer over a batch of low-res tiles, built once per model and device.

``cpu``: torch, channels_last (the learned codec's TorchSynthesis, shared), under bfloat16
autocast when the CPU computes bf16 natively (``tileserver.precision``: half the time per tile on an
AVX512-BF16 CPU, measured in bench/results/sr-speed.md). ``cuda``: an ONNX
export run by onnxruntime with the CUDA provider when onnxruntime-gpu sees a GPU, else torch
on the GPU. ``onnx``: the ONNX export with the best provider present. All take
N x 3 x h x w float32 in [0, 1] and return N x 3 x 4h x 4w float32 in [0, 1].
"""
from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import numpy as np

from tileserver.codecs.synthesis import DEVICES, TorchSynthesis, onnx_cache_dir
from tileserver.errors import CodecError
from tileserver.precision import SR_PRECISION_ENV, cpu_precision
from tileserver.sr.models import Enhancer

CUDA_PROVIDER = "CUDAExecutionProvider"


def export_onnx(net, path: Path) -> None:
    """Export with dynamic batch and size (legacy exporter: needs no onnxscript)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    torch.onnx.export(
        net, (torch.zeros(1, 3, 16, 16),), str(tmp_path), input_names=["small"], output_names=["tile"],
        dynamic_axes={"small": {0: "n", 2: "h", 3: "w"}, "tile": {0: "n", 2: "H", 3: "W"}},
        opset_version=17, dynamo=False,
    )
    os.replace(tmp_path, path)


class OnnxEnhancer:
    def __init__(self, enhancer: Enhancer, providers: list[str]):
        """Exports are cached by model sha256; a model with none (in training) gets a fresh one."""
        import onnxruntime

        if enhancer.sha256:
            path = onnx_cache_dir() / f"sr4-{enhancer.sha256[:16]}.onnx"
        else:
            path = Path(tempfile.mkdtemp(prefix="tileserver-onnx-")) / "sr4.onnx"
        if not path.exists():
            export_onnx(copy.deepcopy(enhancer.net).eval(), path)
        self.session = onnxruntime.InferenceSession(str(path), providers=providers)

    def __call__(self, small) -> np.ndarray:
        (tile,) = self.session.run(["tile"], {"small": small.contiguous().numpy()})
        return np.clip(tile, 0, 1)


def onnx_providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in (CUDA_PROVIDER, "CPUExecutionProvider") if p in available]


def _build(enhancer: Enhancer, device: str):
    if device == "cpu":
        return TorchSynthesis(copy.deepcopy(enhancer.net), "cpu", bf16=cpu_precision(SR_PRECISION_ENV) == "bf16")
    providers = onnx_providers()
    if device == "cuda" and CUDA_PROVIDER not in providers:
        return TorchSynthesis(copy.deepcopy(enhancer.net), "cuda")
    return OnnxEnhancer(enhancer, providers)


def runner(enhancer: Enhancer, device: str):
    """The enhancer's runner on a device, built on first use."""
    if device not in DEVICES:
        raise CodecError(f"unknown device {device!r} for SR4; known: {', '.join(DEVICES)}")
    with enhancer.lock:
        if device not in enhancer.runners:
            enhancer.runners[device] = _build(enhancer, device)
        return enhancer.runners[device]
