"""One training step of the learned codec in fp32 and with g_a and g_s under bf16 autocast.

    python bench/bench_train_precision.py [--arch mbt2018-mean-light-hs --N 64 --M 192 --N-s 80]
        [--batch 2 --crop 256 --threads 1] [--out bench/results/train-precision.md]

The trainer's own step (``CodecTrainer.train_step``: forward, rate-distortion loss with the SSIM
term, backward, Adam and the auxiliary step) on random crops of LC25000 and the training slides,
the same batches for both precisions. Reported: median ms per step of 3 rounds of 10 steps
after 3 warm-up steps, the rounds alternating between the precisions. The load average is
recorded: the 2 cores may be shared. Whether bf16 steps train as well is a separate question,
answered by training (README, `--precision`).
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: shared CPU
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tileserver.precision import BF16_CPU_FLAGS, cpu_flags
from tileserver.train.codec_data import DEFAULT_DATA, training_sampler
from tileserver.train.codec_trainer import CodecTrainer, TrainConfig

ROUNDS, STEPS, WARMUP = 3, 10, 3


def bf16_flags() -> str:
    flags = cpu_flags()
    return ", ".join(f for f in (*BF16_CPU_FLAGS, "amx_tile") if f in flags) or "no native bf16"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mbt2018-mean-light-hs")
    parser.add_argument("--N", type=int, default=64)
    parser.add_argument("--M", type=int, default=192)
    parser.add_argument("--N-s", type=int, default=80)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train-precision.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    config = dict(arch=args.arch, N=args.N, M=args.M, N_s=args.N_s, batch=args.batch, crop=args.crop,
                  threads=args.threads, ssim_weight=48.0, lmbda=0.0015, lr=1e-5, warmup=1, val_minutes=0)
    sampler = training_sampler([DEFAULT_DATA], args.crop, TrainConfig().slides)
    trainers, batches = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            trainers[precision] = CodecTrainer(TrainConfig(**config, precision=precision),
                                               Path(tmp) / precision, resume=False)
        rng = trainers["fp32"].rng
        for _ in range(WARMUP + STEPS):
            x = torch.from_numpy(sampler.batch(rng, args.batch)).permute(0, 3, 1, 2).float().div_(255)
            batches.append(x.contiguous(memory_format=torch.channels_last))
        for trainer in trainers.values():
            for x in batches[:WARMUP]:
                trainer.train_step(x)
        times = {precision: [] for precision in trainers}
        for _ in range(ROUNDS):
            for precision, trainer in trainers.items():
                start = time.perf_counter()
                for x in batches[WARMUP:]:
                    trainer.train_step(x)
                times[precision].append((time.perf_counter() - start) * 1000 / STEPS)
    fp32 = statistics.median(times["fp32"])
    lines = [
        "# Learned-codec training step: fp32 against g_a and g_s under bf16 autocast",
        "",
        f"`python bench/bench_train_precision.py --arch {args.arch} --N {args.N} --M {args.M} "
        f"--N-s {args.N_s} --batch {args.batch} --crop {args.crop} --threads {args.threads}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU flags: {bf16_flags()}; load "
        f"average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. The trainer's step "
        f"(forward, loss with the SSIM term, backward, Adam, auxiliary step) over the same {STEPS} "
        f"batches; median of {ROUNDS} rounds.",
        "",
        "| precision | ms per step | steps/s | vs fp32 |",
        "|---|---:|---:|---:|",
    ]
    for precision in trainers:
        ms = statistics.median(times[precision])
        lines.append(f"| {precision} | {ms:.0f} | {1000 / ms:.2f} | {fp32 / ms:.2f}x |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
