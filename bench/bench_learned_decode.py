"""Learned-tile decode speed through the codec path (prepare + synthesize), 256 px tiles.

    python bench/bench_learned_decode.py --model NAME [--threads 2] [--repeat 3]
        [--out bench/results/learned-decode.md]

Modes: batch 1 (``decode`` per tile) and batched (``decode_batch`` of 8 and 16), for the torch
(channels_last) and ONNX Runtime g_s; "pipelined" entropy-decodes the next batch in a thread
while g_s runs on the current one (torch releases the GIL), as the decode engine can. Also
gives the two stages alone. The tiles are the 48 validation tiles of tcga-cr-7395. Numbers
depend on what else runs on the machine: the load average is recorded with the table.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: shared CPU
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from tileserver.codecs.learned import LearnedCodec
from tileserver.train.codec_data import DEFAULT_DATA, validation_tiles


def _batches(bodies: list[bytes], size: int) -> list[list[bytes]]:
    return [bodies[i : i + size] for i in range(0, len(bodies), size)]


def pipelined(codec: LearnedCodec, bodies: list[bytes], size: int) -> None:
    batches = _batches(bodies, size)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(lambda b: [codec.prepare(x) for x in b], batches[0])
        for following in batches[1:] + [None]:
            prepared = pending.result()
            if following is not None:
                pending = pool.submit(lambda b: [codec.prepare(x) for x in b], following)
            codec.synthesize(prepared)


def modes(codec: LearnedCodec, bodies: list[bytes]) -> dict:
    prepared = [codec.prepare(b) for b in bodies]
    return {
        "batch 1": lambda: [codec.decode(b) for b in bodies],
        "batch 8": lambda: [codec.decode_batch(b) for b in _batches(bodies, 8)],
        "batch 16": lambda: [codec.decode_batch(b) for b in _batches(bodies, 16)],
        "batch 8, pipelined": lambda: pipelined(codec, bodies, 8),
        "entropy decoding only": lambda: [codec.prepare(b) for b in bodies],
        "g_s only, batch 8": lambda: [codec.synthesize(prepared[i : i + 8]) for i in range(0, len(prepared), 8)],
    }


def best_seconds(fn, repeat: int) -> tuple[float, float]:
    """(wall, process CPU) seconds of the fastest of ``repeat`` runs, after a warm-up run."""
    fn()  # warm-up: ONNX session, oneDNN kernels
    times = []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "learned-decode.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tiles = validation_tiles([args.data])["tcga48"]
    bodies = [LearnedCodec(args.model).encode(t) for t in tiles]
    bpp = 8 * sum(map(len, bodies)) / (len(tiles) * 256 * 256)
    load = os.getloadavg()[0]
    rows = []
    for device in ("cpu", "onnx"):
        codec = LearnedCodec(device=device)
        for mode, fn in modes(codec, bodies).items():
            seconds, cpu = best_seconds(fn, args.repeat)
            rows.append(f"| {device} | {mode} | {1000 * seconds / len(bodies):.1f} | {len(bodies) / seconds:.1f} "
                        f"| {1000 * cpu / len(bodies):.1f} | {os.cpu_count() * len(bodies) / cpu:.1f} |")
            print(rows[-1], flush=True)
    config = LearnedCodec(args.model).model.config
    header = [
        f"# Learned decode benchmark: `{args.model}` ({config['arch']} N={config['N']} M={config['M']})",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, torch {args.threads} threads, load average "
        f"{load:.1f} at start (other jobs share the CPU); {len(bodies)} tiles of 256 px at {bpp:.2f} bpp; "
        f"best of {args.repeat}.",
        "",
        f"Command: `python bench/bench_learned_decode.py --model {args.model} --threads {args.threads}`",
        "",
        "Wall time is what this run got on a shared CPU; CPU ms/tile is the work done, and "
        f"'tiles/s if the {os.cpu_count()} cores were free' = cores / CPU time (an upper bound).",
        "",
        f"| g_s runtime | mode | ms/tile | tiles/s | CPU ms/tile | tiles/s if the {os.cpu_count()} cores were free |",
        "|---|---|---|---|---|---|",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(header + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
