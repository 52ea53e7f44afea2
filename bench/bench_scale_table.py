"""Bytes and entropy-decoding time of a learned model against the size of its scale table.

    python bench/bench_scale_table.py [--model default] [--levels 64,128,256]
        [--out bench/results/scale-table-MODEL.md]

y's Gaussians are coded with the CDF of the nearest scale-table entry at or above their scale
(CompressAI's 64 levels from 0.11 to 256, spaced evenly in log). A finer table wastes fewer bits
on that rounding, but the decoder hands the rANS coder every table a tile uses on every call.
The model's weights are kept; only its tables are rebuilt (``update()`` with the given table). The 48 tcga-cr-7395 validation
tiles are encoded with each table and entropy-decoded (``decode_y``: rANS + float64 h_s, one
thread, best of 3 passes).
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: shared CPU
import time
from pathlib import Path

import torch
from compressai.models.base import get_scale_table

from tileserver.codecs.hyperprior import PAD
from tileserver.codecs.learned import LearnedCodec, unpack_body
from tileserver.codecs.learned_models import LearnedModel, default_model_name, model_path, read_net
from tileserver.train.codec_data import DEFAULT_DATA, validation_tiles


def model_with_table(name: str, levels: int) -> LearnedModel:
    net, config = read_net(model_path(name))
    net.update(scale_table=get_scale_table(levels=levels), force=True)
    return LearnedModel.from_net(f"{name}-t{levels}", net, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--levels", default="64,128,256", help="comma-separated table sizes")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    name = default_model_name() if args.model == "default" else args.model
    tiles = validation_tiles([DEFAULT_DATA])["tcga48"]
    lines = [f"# Scale-table size of {name}", "",
             f"`python bench/bench_scale_table.py --model {args.model} --levels {args.levels}`; "
             f"{len(tiles)} tcga-cr-7395 tiles, one thread, load average {os.getloadavg()[0]:.2f} at the start.", "",
             "| levels | total bytes | vs 64 levels | entropy decoding ms/tile |", "|---:|---:|---:|---:|"]
    reference = None
    for levels in map(int, args.levels.split(",")):
        codec = LearnedCodec(model=model_with_table(name, levels))
        bodies = [codec.encode(tile) for tile in tiles]
        total = sum(map(len, bodies))
        reference = reference or total
        streams = [unpack_body(body) for body in bodies]
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _, height, width, z, y in streams:
                codec.model.coder.decode_y(z, y, height + -height % PAD, width + -width % PAD)
            best = min(best, (time.perf_counter() - start) / len(streams))
        lines.append(f"| {levels} | {total} | {total / reference - 1:+.2%} | {1000 * best:.1f} |")
        print(lines[-1], flush=True)
    out = args.out or Path(__file__).parent / "results" / f"scale-table-{name}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
