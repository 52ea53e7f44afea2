"""Encoder-side latent refinement (``learned:MODEL+refineN``): bytes, quality and encode time
for step counts and learning rates.

    python bench/bench_refine.py [--model default] [--steps 0,30,60] [--lr 0.03]
        [--rate-weight 1.8] [--tiles 48] [--threads 1] [--out bench/results/refine-MODEL-sga.md]

The first --tiles of the 48 tcga-cr-7395 validation tiles are encoded with each setting
(0 steps: g_a's latents as they are), decoded by the standard decoder and compared with the
originals (--lr: the peak of the cosine schedule; --rate-weight: the rate's weight in the
refinement loss); JPEG q90 on the same tiles is the byte reference of the training campaign's targets.
Reported per setting: bpp, total kB, bytes against JPEG q90 (by totals), PSNR, SSIM mean
(min) and encode seconds per tile. The load average is recorded: the 2 cores may be shared.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: shared CPU
import time
from pathlib import Path

import numpy as np
import torch

from tileserver import quality
from tileserver.codecs import from_spec
from tileserver.codecs.learned import LearnedCodec
from tileserver.codecs.refine import PEAK_LEARNING_RATE, RATE_WEIGHT
from tileserver.train.codec_data import DEFAULT_DATA, validation_tiles


def measure(codec, tiles: list[np.ndarray]) -> dict:
    start = time.perf_counter()
    bodies = [codec.encode(t) for t in tiles]
    seconds = (time.perf_counter() - start) / len(tiles)
    decoded = [codec.decode(b) for b in bodies]
    ssims = [quality.ssim(t, d) for t, d in zip(tiles, decoded)]
    return {"bytes": sum(map(len, bodies)), "psnr": float(np.mean([quality.psnr(t, d) for t, d in zip(tiles, decoded)])),
            "ssim": float(np.mean(ssims)), "ssim_min": float(np.min(ssims)), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="a model name; default: the one models/DEFAULT names")
    parser.add_argument("--steps", default="0,30,60", help="comma-separated step counts (0: no refinement)")
    parser.add_argument("--lr", default=str(PEAK_LEARNING_RATE), help="comma-separated peak learning rates")
    parser.add_argument("--rate-weight", default=str(RATE_WEIGHT), help="comma-separated rate weights")
    parser.add_argument("--tiles", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    tiles = validation_tiles([DEFAULT_DATA])["tcga48"][: args.tiles]
    pixels = sum(t.shape[0] * t.shape[1] for t in tiles)
    jpeg = measure(from_spec("jpeg:90"), tiles)
    codec = LearnedCodec(args.model)
    name = codec.model.name
    lines = [f"# Latent refinement of {name}", "",
             f"`python bench/bench_refine.py --model {args.model} --steps {args.steps} --lr {args.lr} "
             f"--rate-weight {args.rate_weight} --tiles {args.tiles} --threads {args.threads}`; "
             f"{len(tiles)} tcga-cr-7395 tiles, "
             f"{args.threads} thread(s), load average {load:.2f} at the start. JPEG q90: "
             f"{8 * jpeg['bytes'] / pixels:.3f} bpp, SSIM {jpeg['ssim']:.4f} (min {jpeg['ssim_min']:.3f}).", "",
             "| steps | peak lr | rate weight | bpp | total kB | bytes vs JPEG q90 | PSNR dB | SSIM mean (min) "
             "| encode s/tile |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    settings = [(0, None, None)] if "0" in args.steps.split(",") else []
    settings += [(int(s), float(lr), float(w)) for s in args.steps.split(",") if int(s)
                 for lr in args.lr.split(",") for w in args.rate_weight.split(",")]
    for steps, lr, weight in settings:
        if steps:
            codec = LearnedCodec(f"{name}+refine{steps}")
            codec.refiner.peak_lr, codec.refiner.rate_weight = lr, weight
        row = measure(codec, tiles)
        lines.append(f"| {steps} | {lr or '-'} | {weight or '-'} | {8 * row['bytes'] / pixels:.3f} "
                     f"| {row['bytes'] / 1000:.1f} "
                     f"| {row['bytes'] / jpeg['bytes'] - 1:+.1%} | {row['psnr']:.2f} "
                     f"| {row['ssim']:.4f} ({row['ssim_min']:.3f}) | {row['seconds']:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    out = args.out or Path(__file__).parent / "results" / f"refine-{name}-sga.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
