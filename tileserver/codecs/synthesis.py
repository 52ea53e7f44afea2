"""Runners for a learned model's synthesis transform g_s over a batch of decoded y.

``cpu``: torch, channels_last (measured 15-35% faster on this CPU), under bfloat16 autocast
but for the last layer where the CPU has native bf16 ($TILESERVER_CODEC_PRECISION, see
tileserver.precision: 1.6x faster g_s on an AVX512-BF16 CPU,
bench/results/codec-precision.md). ``cuda``: torch on the
GPU. ``onnx``: an ONNX export of g_s run by onnxruntime, with the CUDA provider when
onnxruntime-gpu and a GPU are present. All return N x 3 x H x W float32 in [0, 1].
"""
from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from tileserver.errors import CodecError
from tileserver.precision import CODEC_PRECISION_ENV, cpu_precision

DEVICES = ("cpu", "cuda", "onnx")


def torch_device(device: str) -> torch.device:
    """The torch device for "cpu" or "cuda"; a clear error where torch sees no GPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise CodecError("device 'cuda' asked for, but torch sees no CUDA GPU")
    return torch.device(device)


class TorchSynthesis:
    """``bf16``: run under bfloat16 autocast (convolutions in bf16, the rest in fp32), except the
    last ``fp32_tail`` layers of a Sequential. The learned codec keeps its last deconvolution,
    the one that makes 8-bit pixels, in fp32: measured on he-msh64-a6 and tcga48, all-bf16 g_s
    costs 0.07 dB, bf16 but the last layer 0.02 dB (52 and 55 dB from the fp32 pixels)."""

    def __init__(self, g_s, device: str, bf16: bool = False, fp32_tail: int = 0):
        self.device = torch_device(device)
        self.bf16 = bf16
        self.head = g_s.to(self.device, memory_format=torch.channels_last)
        self.tail = torch.nn.Identity()
        if fp32_tail:
            layers = list(self.head.children())
            self.head, self.tail = torch.nn.Sequential(*layers[:-fp32_tail]), torch.nn.Sequential(*layers[-fp32_tail:])

    def __call__(self, y) -> np.ndarray:
        with torch.inference_mode():
            y = y.to(self.device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                x = self.head(y)
            return self.tail(x.float()).clamp_(0, 1).cpu().numpy()


def onnx_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tileserver" / "onnx"


def export_onnx(g_s, M: int, path: Path) -> None:
    """Export g_s with dynamic batch and size (legacy exporter: needs no onnxscript)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    torch.onnx.export(
        g_s, (torch.zeros(1, M, 16, 16),), str(tmp_path), input_names=["y"], output_names=["x"],
        dynamic_axes={"y": {0: "n", 2: "h", 3: "w"}, "x": {0: "n", 2: "H", 3: "W"}},
        opset_version=17, dynamo=False,
    )
    os.replace(tmp_path, path)


class OnnxSynthesis:
    def __init__(self, g_s, M: int, sha256: str):
        """Exports are cached by model sha256; a model with none (in training) gets a fresh one."""
        import onnxruntime

        if sha256:
            path = onnx_cache_dir() / f"g_s-{sha256[:16]}.onnx"
        else:
            path = Path(tempfile.mkdtemp(prefix="tileserver-onnx-")) / "g_s.onnx"
        if not path.exists():
            export_onnx(g_s, M, path)
        available = onnxruntime.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = onnxruntime.SessionOptions()
        # No busy-waiting between ops: the CPU is shared with entropy decoding in other threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)

    def __call__(self, y) -> np.ndarray:
        (x,) = self.session.run(["x"], {"y": y.numpy()})
        return np.clip(x, 0, 1)


def runner(model, device: str):
    """The g_s runner of a LearnedModel on a device, built once per model and device."""
    if device not in DEVICES:
        raise CodecError(f"unknown device {device!r} for learned codecs; known: {', '.join(DEVICES)}")
    with model.lock:
        if device not in model.runners:
            g_s = copy.deepcopy(model.coder.synthesis)
            if device == "onnx":
                model.runners[device] = OnnxSynthesis(g_s, int(model.config["M"]), model.sha256)
            else:
                bf16 = device == "cpu" and cpu_precision(CODEC_PRECISION_ENV) == "bf16"
                model.runners[device] = TorchSynthesis(g_s, device, bf16=bf16, fp32_tail=1)
        return model.runners[device]
