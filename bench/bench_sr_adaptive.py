"""Adaptive (AdaSlide) evaluation: keep (JPEG q90) or compress (SR4) per tile, at several λ.

    python bench/bench_sr_adaptive.py [--policy cda-b32] [--out bench/results/sr-adaptive.md]
                                      [--figure docs/sr-decisions-heatmap.png]

On the 48 tcga-cr-7395 validation tiles and on tcga-cr-7395 as a whole slide (every pyramid
level; tiles with no tissue in the encoder's tissue mask are glass: zero bytes). Per λ: bytes
against a JPEG q90 pyramid, PSNR and SSIM (mean, min), nuclei Dice (mean, min), the share of
tiles compressed, and decode ms per tile (SR4 in batches of 8, torch, 2 threads). Each tile is
coded and decoded once per codec; λ only changes which of the two a tile gets. The figure
shows level 0's decisions over the slide: red keep, blue compress.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tileserver import codecs
from tileserver.encode.adaptive import DEFAULT_POLICY, THRESHOLD
from tileserver.encode.encoder import compute_mask, mask_under_tile
from tileserver.encode.pyramid import plan_levels, read_scaled, tile_pixels
from tileserver.format.payload import HEADER_SIZE
from tileserver.nuclei import nuclei_dice
from tileserver.quality import psnr, ssim
from tileserver.slides.source import open_source
from tileserver.sr.heatmap import overlay
from tileserver.sr.policy import load_policy
from tileserver.train.codec_data import DEFAULT_DATA, VAL_SLIDE, validation_tiles

LMBDAS = (0.1, 0.5, 1.0)
TILE = 256
BATCH = 8
THUMB_DS = 16  # the figure's thumbnail downsample


@dataclass
class Coded:
    """One codec's outcome for each tile: bytes with header, quality, Dice, decode ms."""

    nbytes: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    dice: np.ndarray
    ms: np.ndarray


def code_all(spec: str, tiles: list[np.ndarray]) -> Coded:
    codec = codecs.from_spec(spec)
    bodies = [codec.encode(t) for t in tiles]
    decoded, ms = [], []
    for i in range(0, len(bodies), BATCH):
        chunk = bodies[i : i + BATCH]
        start = time.perf_counter()
        decoded += codecs.decoder(codec.codec_id).decode_batch(chunk)
        ms += [(time.perf_counter() - start) * 1000 / len(chunk)] * len(chunk)
    return Coded(np.array([len(b) + HEADER_SIZE for b in bodies]),
                 np.array([psnr(t, d) for t, d in zip(tiles, decoded)]),
                 np.array([ssim(t, d) for t, d in zip(tiles, decoded)]),
                 np.array([nuclei_dice(t, d) for t, d in zip(tiles, decoded)]), np.array(ms))


def row(label: str, compress: np.ndarray, keep: Coded, sr4: Coded, reference_bytes: int) -> str:
    pick = lambda field: np.where(compress, getattr(sr4, field), getattr(keep, field))  # noqa: E731
    nbytes = int(pick("nbytes").sum())
    return (f"| {label} | {nbytes / 1e6:.3f} | {nbytes / reference_bytes:.1%} | {pick('psnr').mean():.2f} | "
            f"{pick('psnr').min():.2f} | {pick('ssim').mean():.4f} | {pick('ssim').min():.4f} | "
            f"{pick('dice').mean():.3f} | {pick('dice').min():.3f} | {compress.mean():.0%} | {pick('ms').mean():.1f} |")


def slide_tiles(path: Path) -> tuple[list[np.ndarray], list[tuple[int, int, int]], int, np.ndarray]:
    """Tissue tiles of every level, their (level, col, row), the JPEG q90 bytes of all tiles
    (glass intact, as the encoder's reference), and a level-0 thumbnail at 1/THUMB_DS."""
    jpeg = codecs.from_spec("jpeg:90")
    tiles, where, reference = [], [], 0
    with open_source(path) as source:
        mask, mask_ds = compute_mask(source)
        for index, level in enumerate(plan_levels(*source.dimensions, TILE)):
            for row_ in range(level.tiles_down(TILE)):
                for col in range(level.tiles_across(TILE)):
                    tile, width, height = tile_pixels(source, level, TILE, col, row_)
                    reference += len(jpeg.encode(tile)) + HEADER_SIZE
                    tissue = mask_under_tile(mask, mask_ds, level, TILE, col, row_, width, height)
                    if tissue.any():  # as the encoder's --glass zero: glass pixels whitened
                        tile[:height, :width][~tissue] = source.background
                        tiles.append(tile)
                        where.append((index, col, row_))
        width, height = source.dimensions
        thumbnail = read_scaled(source, 0, 0, THUMB_DS, math.ceil(width / THUMB_DS), math.ceil(height / THUMB_DS))
    return tiles, where, reference, thumbnail


def table(title: str, tiles: list[np.ndarray], reference_bytes: int, p: dict[float, np.ndarray],
          keep: Coded, sr4: Coded) -> list[str]:
    lines = [f"## {title}", "", f"{len(tiles)} tissue tiles; JPEG q90 reference: {reference_bytes / 1e6:.3f} MB.", "",
             "| encoding | MB | vs JPEG q90 | PSNR mean | PSNR min | SSIM mean | SSIM min | Dice mean | Dice min "
             "| compressed | decode ms/tile |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines.append(row("JPEG q90 (keep all)", np.zeros(len(tiles), bool), keep, sr4, reference_bytes))
    lines.append(row("SR4 (compress all)", np.ones(len(tiles), bool), keep, sr4, reference_bytes))
    for lmbda in LMBDAS:
        lines.append(row(f"adaptive:{lmbda}", p[lmbda] >= THRESHOLD, keep, sr4, reference_bytes))
    print("\n".join(lines), flush=True)
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=DEFAULT_POLICY)
    parser.add_argument("--sr4", default="sr4")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sr-adaptive.md"))
    parser.add_argument("--figure", default=str(Path(__file__).parents[1] / "docs" / "sr-decisions-heatmap.png"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    policy = load_policy(args.policy)
    sr4_entry = codecs.from_spec(args.sr4).describe()
    lines = ["# Adaptive compression (AdaSlide): evaluation", "",
             f"Command: `python bench/bench_sr_adaptive.py --policy {args.policy} --sr4 {args.sr4}`; "
             f"load average {os.getloadavg()[0]:.1f} at start (2 cores shared: decode times are upper bounds).",
             f"Policy `{policy.name}` (sha256 {policy.sha256[:12]}), enhancer `{sr4_entry['model']}` "
             f"(sha256 {sr4_entry['sha256'][:12]}), low-res storage `{sr4_entry['storage']}`, keep codec `jpeg:90`.",
             "Bytes include the 16-byte payload header per tile. Dice: nuclei masks (tileserver.nuclei) of the",
             "decoded tile against the original's.", ""]

    val = validation_tiles([DEFAULT_DATA])["tcga48"]
    keep, sr4 = code_all("jpeg:90", val), code_all(args.sr4, val)
    p = {lmbda: policy.p_compress(val, lmbda) for lmbda in LMBDAS}
    lines += table("tcga48 validation tiles", val, int(keep.nbytes.sum()), p, keep, sr4)

    tiles, where, reference, thumbnail = slide_tiles(DEFAULT_DATA / VAL_SLIDE)
    keep, sr4 = code_all("jpeg:90", tiles), code_all(args.sr4, tiles)
    p = {lmbda: np.concatenate([policy.p_compress(tiles[i : i + 64], lmbda) for i in range(0, len(tiles), 64)])
         for lmbda in LMBDAS}
    lines += table("tcga-cr-7395 whole slide, all levels", tiles, reference, p, keep, sr4)
    lines.append("Tiles are cut and glass-masked as the encoder does with `--glass zero` (glass tiles are zero "
                 "bytes, glass pixels in tissue tiles whitened); the JPEG q90 reference codes every tile as "
                 "scanned, glass included. Quality is measured against the glass-masked tiles.")

    across, down = math.ceil(thumbnail.shape[1] * THUMB_DS / TILE), math.ceil(thumbnail.shape[0] * THUMB_DS / TILE)
    panels = []
    for lmbda in LMBDAS:
        grid = np.full((down, across), np.nan, np.float32)
        for (level, col, row_), value in zip(where, p[lmbda]):
            if level == 0:
                grid[row_, col] = value
        panels.append(overlay(thumbnail, grid, TILE / THUMB_DS))
    gap = np.full((thumbnail.shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], 1)).save(args.figure)
    lines.append(f"\nFigure: `{args.figure}` (λ = {', '.join(map(str, LMBDAS))}, left to right).")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
