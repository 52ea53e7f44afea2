"""Enhancer restore time of a 256 px tile (64 px input) by RRDBNet size and runtime, on 2 threads.

    python bench/bench_sr_speed.py [--out bench/results/sr-speed.md]

Random weights (time does not depend on them). torch runs channels_last, as the SR4 codec
does, in fp32 and under bfloat16 autocast (the codec's CPU path where the CPU has native bf16);
ONNX Runtime runs the same net exported by tileserver.sr.runtime. Median of 5 runs,
in batches of 8 and of 1. The load average is recorded: the 2 cores are shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tileserver.sr.rrdbnet import RRDBNet
from tileserver.precision import native_bf16
from tileserver.sr.runtime import export_onnx

SIZES = [(1, 32, 16), (2, 32, 16), (4, 32, 16), (6, 32, 16), (2, 48, 24), (6, 64, 32), (23, 64, 32)]
RUNS = 5


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def median_ms(run, x: torch.Tensor, runs: int) -> float:
    run(x)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1000 / len(x))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sr-speed.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    load = os.getloadavg()[0]
    rows = []
    for blocks, features, growth in SIZES:
        net = RRDBNet(blocks, features, growth).eval()
        params = sum(p.numel() for p in net.parameters())
        cl = net.to(memory_format=torch.channels_last)
        runs = 1 if blocks > 6 else RUNS

        def torch_run(x):
            with torch.inference_mode():
                return cl(x.contiguous(memory_format=torch.channels_last))

        def torch_bf16_run(x):  # what the SR4 codec runs on a CPU with native bf16
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
                return cl(x.contiguous(memory_format=torch.channels_last)).float()

        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(net, Path(tmp) / "sr.onnx")
            session = onnxruntime.InferenceSession(str(Path(tmp) / "sr.onnx"), options,
                                                   providers=["CPUExecutionProvider"])
        onnx_run = lambda x: session.run(["tile"], {"small": x.numpy()})  # noqa: E731
        cells = [median_ms(fn, torch.rand(n, 3, 64, 64), runs)
                 for fn in (torch_run, torch_bf16_run, onnx_run) for n in (8, 1)]
        rows.append(f"| {blocks} | {features} | {growth} | {params / 1e6:.2f} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
        print(rows[-1], flush=True)
    lines = [f"# Enhancer restore time per 256 px tile (2 threads, load average {load:.1f} at start)", "",
             "Command: `python bench/bench_sr_speed.py`. ms per tile; median of 5 runs (1 for 23 blocks). "
             f"CPU: {cpu_name()}; native bf16: {native_bf16()} (bf16 columns: torch under bfloat16 "
             "autocast, emulated and slow without native bf16).", "",
             "| blocks | features | growth | M params | torch batch 8 | torch batch 1 | torch bf16 batch 8 "
             "| torch bf16 batch 1 | ONNX RT batch 8 | ONNX RT batch 1 |",
             "|---|---|---|---|---|---|---|---|---|---|", *rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
