"""Learned-tile decode throughput of the server's engine against `--decode-processes`.

    nice python bench/bench_decode_processes.py [--model he-msh64-a2] [--processes 0,1,2,4]
        [--passes 3] [--out bench/results/decode-processes.md]

The 48 tcga-cr-7395 validation tiles are laid out 8 x 6, encoded with the learned model through
the real encoder, and decoded through DecodeEngine.tile exactly as the server does: the CPU stage
(entropy decoding + float64 h_s) in threads (0 processes) or in N worker processes, then the
batched g_s on the CPU device. Each setting: one warm-up pass (processes start, models load),
then --passes passes over the 48 tiles with the decoded-tile cache emptied before each, taken
round-robin over the settings (a shared machine's load drifts over all alike); the median pass
and its CPU time (this process and the decode processes) are reported, with the load average.

It also measures the per-tile CPU cost of each stage in this process (one thread) and counts the
multiply-accumulates of g_s, for the on-paper estimate of a 16-core + 1 GPU server.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: shared CPU
import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

from tileserver.codecs.hyperprior import FixedGDN
from tileserver.codecs.learned import LearnedCodec
from tileserver.encode.encoder import EncodeSettings, encode_slide
from tileserver.engine import DecodeEngine
from tileserver.precision import CODEC_PRECISION_ENV, cpu_precision, native_bf16
from tileserver.server.imaging import render
from tileserver.slides.tiled import StoredSlide
from tileserver.train.codec_data import DEFAULT_DATA, validation_tiles

GRID = (8, 6)
CORES, RESERVED = 16, 2  # the server on paper; cores kept for the event loop, JPEG encoding, IPC
GPU_TFLOPS = 4.0  # assumed sustained fp32 rate of a T4-class GPU on these convolutions (half its 8.1 peak)


def mosaic_slide(model: str, work: Path) -> Path:
    tiles = validation_tiles([DEFAULT_DATA])["tcga48"]
    cols, rows = GRID
    image = np.concatenate([np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(rows)])
    Image.fromarray(image).save(work / "tcga48.png")
    out = work / "tcga48.tif"
    codec = f"learned:{model}"
    encode_slide(work / "tcga48.png", out, EncodeSettings(codecs=[codec], fallback=codec, glass="keep"), progress=False)
    return out


def cpu_seconds() -> float:
    """CPU time of this process and its children (the decode processes) so far."""
    children = psutil.Process().children(recursive=True)
    return time.process_time() + sum(sum(c.cpu_times()[:2]) for c in children if c.is_running())


async def one_pass(engine: DecodeEngine, slide: StoredSlide, cells: list) -> tuple[float, float]:
    """(wall, CPU) seconds to decode ``cells`` of level 0 with the decoded-tile cache empty."""
    engine.tiles.clear()
    started, cpu = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(engine.tile(slide, 0, c, r) for c, r in cells))
    return time.perf_counter() - started, cpu_seconds() - cpu


async def measure(slide: StoredSlide, counts: list[int], passes: int) -> dict[int, list[tuple[float, float]]]:
    """Every setting's engine at once, warmed up, then the passes round-robin over the settings,
    so that the load of a shared machine drifts over all of them alike."""
    across, down = slide.pyramid.grid(0)
    cells = [(c, r) for r in range(down) for c in range(across)]
    engines = {n: DecodeEngine("cpu", decode_processes=n) for n in counts}
    times: dict[int, list] = {n: [] for n in counts}
    try:
        for engine in engines.values():
            await one_pass(engine, slide, cells)  # processes start, models load
        for _ in range(passes):
            for n, engine in engines.items():
                times[n].append(await one_pass(engine, slide, cells))
    finally:
        for engine in engines.values():
            engine.close()
    return times


def stage_costs(slide: StoredSlide) -> dict:
    """CPU seconds per tile of each stage, one thread, in this process."""
    codec = LearnedCodec()
    bodies = [slide.fetch(0, c, r).body for r in range(GRID[1]) for c in range(GRID[0])]
    torch.set_num_threads(1)
    cpu = time.process_time()
    prepared = [codec.prepare(b) for b in bodies]
    prepare = (time.process_time() - cpu) / len(bodies)
    cpu = time.process_time()
    tiles = [t for i in range(0, len(prepared), 8) for t in codec.synthesize(prepared[i : i + 8])]
    synthesize = (time.process_time() - cpu) / len(bodies)
    cpu = time.process_time()
    for tile in tiles:
        render(tile, "jpg")
    jpeg = (time.process_time() - cpu) / len(tiles)
    torch.set_num_threads(os.cpu_count() or 1)
    return {"prepare": prepare, "synthesize": synthesize, "jpeg": jpeg, "g_s_macs": g_s_macs(prepared[0])}


def g_s_macs(prepared) -> int:
    """Multiply-accumulates of g_s on one tile, counted on its (transposed) convolutions and
    the 1x1 convolutions of its inverse GDNs."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        x = inputs[0][0]
        if isinstance(module, FixedGDN):
            total += x.numel() * x.shape[0]
        elif isinstance(module, torch.nn.ConvTranspose2d):
            total += x.numel() * module.out_channels * module.weight[0, 0].numel() // module.groups
        else:
            total += output[0].numel() * module.in_channels * module.weight[0, 0].numel() // module.groups

    module = prepared.model.coder.synthesis
    layers = (torch.nn.modules.conv._ConvNd, FixedGDN)
    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, layers)]
    with torch.inference_mode():
        module(prepared.y_hat)
    for hook in hooks:
        hook.remove()
    return total


def precision() -> str:
    """g_s precision as the engine's CPU runner picks it, and why."""
    chosen = cpu_precision(CODEC_PRECISION_ENV)
    setting = os.environ.get(CODEC_PRECISION_ENV, "auto")
    return f"{chosen} (${CODEC_PRECISION_ENV}={setting}; CPU {'with' if native_bf16() else 'without'} native bf16)"


def report(args, rows: list[tuple[int, float, float]], costs: dict, load: tuple, tiles: int) -> list[str]:
    base = rows[0][1]
    prepare_ms, gs_ms, jpeg_ms = (1000 * costs[k] for k in ("prepare", "synthesize", "jpeg"))
    gflop = 2 * costs["g_s_macs"] / 1e9
    cpu_rate = (CORES - RESERVED) / (costs["prepare"] + costs["jpeg"])
    gpu_rate = GPU_TFLOPS * 1e3 / gflop
    shared = load[0] >= (os.cpu_count() or 1)  # oversubscribed when the run started
    lines = [
        f"# Learned decode throughput against `--decode-processes` (`{args.model}`)",
        "",
        f"`{'nice ' if os.nice(0) > 0 else ''}python bench/bench_decode_processes.py --model {args.model} "
        f"--processes {args.processes} --passes {args.passes}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} "
        f"with {os.cpu_count()} cores{' shared with other jobs' if shared else ''} (load average {load[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end). {tiles} tiles of 256 px (the tcga-cr-7395 validation tiles) "
        f"decoded through DecodeEngine.tile, g_s batched on the CPU in {precision()}; one engine per setting, all "
        "warmed up, then the passes round-robin over the settings; medians of the passes.",
        "",
        "| decode processes | median s per pass | tiles/s | vs threads | CPU ms per tile (all processes) "
        "| cores it got (CPU / wall) |",
        "|---:|---:|---:|---:|---:|---:|",
        *(f"| {p or '0 (threads)'} | {s:.2f} | {tiles / s:.1f} | {base / s:.2f}x | {1000 * c / tiles:.0f} "
          f"| {c / s:.2f} |" for p, s, c in rows),
        "",
        "## Per-tile cost of each stage (one thread, this machine)",
        "",
        f"- prepare (rANS entropy decoding + float64 h_s, holds the GIL): {prepare_ms:.1f} ms CPU",
        f"- g_s on the CPU, batches of 8: {gs_ms:.1f} ms CPU; {gflop:.1f} GFLOP per tile "
        f"({costs['g_s_macs'] / 1e9:.2f} G multiply-accumulates, counted on its layers)",
        f"- JPEG q90 encoding of the response: {jpeg_ms:.1f} ms CPU",
        "",
        f"## On paper: {CORES} cores + 1 GPU",
        "",
        f"With g_s on the GPU, each tile costs the CPU its prepare and its JPEG encoding, "
        f"{prepare_ms + jpeg_ms:.1f} ms. Keeping {RESERVED} cores for the event loop, IPC and the "
        f"GPU feeder and giving {CORES - RESERVED} to decode processes (e.g. `--workers 2 "
        f"--decode-processes {(CORES - RESERVED) // 2}`, both workers sharing the GPU): about "
        f"**{cpu_rate:.0f} tiles/s** of CPU stage, if the processes scale linearly (the table above "
        f"shows how far they did here, on {os.cpu_count()}{' shared' if shared else ''} cores). The GPU side, "
        "assuming a T4-class GPU "
        f"sustains {GPU_TFLOPS:.0f} TFLOP/s fp32 on these convolutions (half its peak): "
        f"{GPU_TFLOPS * 1e3:.0f} / {gflop:.1f} GFLOP = about **{gpu_rate:.0f} tiles/s** of g_s. "
        f"So such a server decodes about **{min(cpu_rate, gpu_rate):.0f} cold learned tiles/s**, bound by "
        f"the {'CPU (entropy decoding)' if cpu_rate < gpu_rate else 'GPU'}. Without decode processes the "
        f"CPU stage of a worker stays on one core ({1 / (costs['prepare'] + costs['jpeg']):.0f} tiles/s); "
        f"{CORES} workers would use the cores too, but each would hold its own CUDA context and g_s and batch "
        "only its own tiles, where decode processes feed one batched g_s per worker. "
        "Warm tiles (in-process or Redis cache) cost no decode at all.",
        "",
    ]
    if shared:
        lines += [
            f"The CPU times above were measured with this machine's {os.cpu_count()} cores oversubscribed "
            f"(load average {load[0]:.0f}): contention for caches inflates them, and no process count can "
            "add cores that other jobs hold (the last column: how many cores a pass got), so the table "
            "measures the overhead of the processes (CPU per tile, all processes together) more than "
            "their scaling. Re-run on free cores to see it.",
            "",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="he-msh64-a2")
    parser.add_argument("--processes", default="0,1,2,4", help="comma-separated counts; 0 = threads")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "decode-processes.md")
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    if counts[0] != 0 or min(counts) < 0 or args.passes < 1:
        parser.error("--processes must start with 0 (the threads baseline) and list counts >= 0; --passes >= 1")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        slide = StoredSlide(mosaic_slide(args.model, Path(tmp)))
        tiles = GRID[0] * GRID[1]
        times = asyncio.run(measure(slide, counts, args.passes))
        rows = [(n, statistics.median(w for w, _ in times[n]), statistics.median(c for _, c in times[n]))
                for n in counts]
        costs = stage_costs(slide)
    lines = report(args, rows, costs, load, tiles)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
