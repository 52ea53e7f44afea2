"""Learned-codec g_s on the CPU in fp32 and under bfloat16 autocast: time and quality.

    python bench/bench_codec_precision.py [--model default] [--threads 1]
        [--out bench/results/codec-precision.md]

The 48 tcga-cr-7395 validation tiles are encoded with the model and entropy-decoded once; g_s
then runs over the same y_hat in batches of 8 with its first K layers under bf16 autocast and
the rest in fp32, for K = all layers down to fp32 only. Reported: median ms per tile of 3
passes, PSNR and SSIM against the original tiles, and PSNR against the fp32 pixels. The server
uses "all but the last layer" (TILESERVER_CODEC_PRECISION, tileserver.precision) where the CPU
has native bf16. The load average is recorded: the 2 cores may be shared.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: shared CPU
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tileserver import quality
from tileserver.codecs.learned import LearnedCodec
from tileserver.codecs.synthesis import TorchSynthesis
from tileserver.precision import native_bf16
from tileserver.train.codec_data import DEFAULT_DATA, validation_tiles

PASSES = 3


def synthesize(run: TorchSynthesis, y: torch.Tensor) -> np.ndarray:
    """8-bit pixels of g_s over y in batches of 8."""
    out = np.concatenate([run(y[i : i + 8]) for i in range(0, len(y), 8)])
    return np.rint(out.transpose(0, 2, 3, 1) * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="a model name; default: the one models/DEFAULT names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "codec-precision.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    codec = LearnedCodec(args.model)
    tiles = validation_tiles([DEFAULT_DATA])["tcga48"]
    y = torch.cat([codec.prepare(codec.encode(t)).y_hat for t in tiles])
    g_s = codec.model.coder.synthesis
    layers = list(g_s.children())
    rows, reference = [], None
    for bf16_layers in range(len(layers), -1, -1):
        # The server's runner, with the first bf16_layers layers under bf16 autocast.
        run = TorchSynthesis(g_s, "cpu", bf16=bf16_layers > 0, fp32_tail=len(layers) - bf16_layers)
        synthesize(run, y[:8])  # warm-up: oneDNN kernels
        times = []
        for _ in range(PASSES):
            start = time.perf_counter()
            pixels = synthesize(run, y)
            times.append((time.perf_counter() - start) * 1000 / len(tiles))
        if bf16_layers == 0:
            reference = pixels
        rows.append((bf16_layers, statistics.median(times), pixels))
    lines = [
        f"# Learned-codec g_s precision on the CPU (`{args.model}`)",
        "",
        f"`python bench/bench_codec_precision.py --model {args.model} --threads {args.threads}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU with{'' if native_bf16() else 'out'} "
        f"native bf16, load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
        f"{len(tiles)} tcga-cr-7395 validation tiles, g_s in batches of 8 over the same entropy-decoded y_hat; "
        f"median of {PASSES} passes.",
        "",
        "| layers under bf16 autocast | ms per tile | vs fp32 | PSNR dB | SSIM mean (min) | PSNR against the fp32 pixels |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    fp32_ms = rows[-1][1]
    for bf16_layers, ms, pixels in rows:
        ssims = [quality.ssim(t, d) for t, d in zip(tiles, pixels)]
        psnr = np.mean([quality.psnr(t, d) for t, d in zip(tiles, pixels)])
        against = (np.mean([quality.psnr(a, b) for a, b in zip(reference, pixels)])
                   if bf16_layers else float("inf"))
        name = {len(layers): "all", len(layers) - 1: "all but the last (the server's bf16)", 0: "none (fp32)"}
        lines.append(f"| {name.get(bf16_layers, f'first {bf16_layers} of {len(layers)}')} | {ms:.1f} | "
                     f"{fp32_ms / ms:.2f}x | {psnr:.3f} | {np.mean(ssims):.5f} ({np.min(ssims):.4f}) | "
                     f"{'identical' if against == float('inf') else f'{against:.1f}'} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
