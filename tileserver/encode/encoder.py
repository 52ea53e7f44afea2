"""Encode a source slide into a tileserver-ntiff pyramid, in parallel worker processes.

The main process plans the levels, computes the tissue mask and streams payloads, in tile
order, from the workers into the writer; workers open the source themselves and return one
packed payload per tile. Memory stays bounded by the number of tiles in flight.
"""
from __future__ import annotations

import io
import math
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tileserver.encode.adaptive import (DEFAULT_POLICY, THRESHOLD, AdaptiveChoice, AdaptiveTileEncoder,
                                       decision_page, is_adaptive, parse_lmbda)
from tileserver.encode.pyramid import plan_levels, read_scaled, tile_pixels
from tileserver.encode.rate import DEFAULT_FALLBACK, DEFAULT_FLOOR, TileEncoder
from tileserver.encode.tissue import tissue_mask
from tileserver.errors import InputError
from tileserver.format import payload
from tileserver.format.metadata import ALLOWED_TILE_SIZES, Level, SlideMetadata
from tileserver.format.writer import NeuralTiffWriter
from tileserver.hashing import sha256_of
from tileserver.slides.source import SourceSlide, open_source

GLASS_MODES = ("keep", "white", "zero")
MASK_DOWNSAMPLE = 16  # the mask is computed at 1/16 of level 0...
MASK_MIN_SIDE = 256  # ...but small images keep at least this many mask pixels a side...
MASK_MAX_SIDE = 8192  # ...and huge ones at most this many


@dataclass
class EncodeSettings:
    codecs: list[str] = field(default_factory=lambda: [DEFAULT_FALLBACK])
    tile_size: int = 256
    glass: str = "zero"
    workers: int = 1
    target_ssim: float | None = None
    floor: float = DEFAULT_FLOOR
    fallback: str = DEFAULT_FALLBACK
    device: str = "cpu"
    keep_codec: str | None = None  # with --codec adaptive:λ, the codec(s) of kept tiles
    policy: str = DEFAULT_POLICY  # with --codec adaptive:λ, the decision policy (models/<name>.pt)

    @property
    def adaptive(self) -> bool:
        return any(is_adaptive(spec) for spec in self.codecs)

    def check(self) -> None:
        if self.tile_size not in ALLOWED_TILE_SIZES:
            raise InputError(f"tile size must be one of {ALLOWED_TILE_SIZES}, not {self.tile_size}")
        if self.glass not in GLASS_MODES:
            raise InputError(f"--glass must be one of {', '.join(GLASS_MODES)}")
        if self.workers < 1:
            raise InputError("--workers must be at least 1")
        if self.adaptive and len(self.codecs) > 1:
            raise InputError("--codec adaptive:λ stands alone; give keep-codec candidates with --keep-codec")
        if self.keep_codec is not None and not self.adaptive:
            raise InputError("--keep-codec applies only with --codec adaptive:λ")


def make_tile_encoder(settings: EncodeSettings) -> TileEncoder | AdaptiveTileEncoder:
    """The per-tile encoder the settings ask for: rate control, or the decision agent."""
    guard = (settings.target_ssim, settings.floor, settings.fallback)
    if settings.adaptive:
        return AdaptiveTileEncoder(parse_lmbda(settings.codecs[0]), keep=settings.keep_codec or DEFAULT_FALLBACK,
                                   policy=settings.policy, device=settings.device, target_ssim=guard[0],
                                   floor=guard[1], fallback=guard[2])
    return TileEncoder(settings.codecs, *guard, settings.device)


@dataclass
class EncodeSummary:
    output: Path
    source_bytes: int
    output_bytes: int
    reference_jpeg90_bytes: int  # a JPEG q90 pyramid of the same tiles with glass intact
    tiles: int
    glass_tiles: int
    tiles_per_codec: dict[str, int]
    fallback_tiles: int
    seconds: float
    compressed_tiles: int | None = None  # SR4 tiles the decision agent chose (adaptive only)


def compute_mask(source: SourceSlide) -> tuple[np.ndarray, int]:
    """The tissue mask of the whole slide, and its downsample against level 0."""
    width, height = source.dimensions
    longest = max(width, height)
    downsample = MASK_DOWNSAMPLE
    while downsample > 1 and longest / downsample < MASK_MIN_SIDE:
        downsample //= 2
    downsample = max(downsample, math.ceil(longest / MASK_MAX_SIDE))
    overview = read_scaled(
        source, 0, 0, downsample, math.ceil(width / downsample), math.ceil(height / downsample)
    )
    return tissue_mask(overview), downsample


# ---- worker side: module globals set once per process by _init_worker ----
_job: dict = {}


def _init_worker(source_path: str, settings: EncodeSettings, mask: np.ndarray, mask_ds: int, levels):
    _job.update(
        source=open_source(source_path),
        encoder=make_tile_encoder(settings),
        settings=settings,
        mask=mask,
        mask_ds=mask_ds,
        levels=levels,
    )


def mask_under_tile(mask: np.ndarray, mask_ds: int, level: Level, tile_size: int,
                    col: int, row: int, width: int, height: int) -> np.ndarray:
    """The tissue mask under one tile, at the tile's resolution (width x height)."""
    span = tile_size * level.downsample / mask_ds  # mask pixels per tile side
    x0, y0 = col * span, row * span
    x1 = x0 + width * level.downsample / mask_ds
    y1 = y0 + height * level.downsample / mask_ds
    crop = mask[int(y0) : max(int(y0) + 1, math.ceil(y1)), int(x0) : max(int(x0) + 1, math.ceil(x1))]
    if crop.size == 0:
        return np.zeros((height, width), bool)
    resized = Image.fromarray(crop.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized) > 0


def _jpeg90_size(tile: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, "JPEG", quality=90)
    return buffer.tell()


def _encode_tile(task: tuple[int, int, int]) -> tuple[bytes, int, str | None, bool, float | None]:
    """-> (stored bytes, reference JPEG q90 bytes, chosen codec label or None for glass, fallback,
    P(compress) or None for glass and non-adaptive codecs)."""
    level_index, col, row = task
    source, settings = _job["source"], _job["settings"]
    level = _job["levels"][level_index]
    tile, width, height = tile_pixels(source, level, settings.tile_size, col, row)
    reference = _jpeg90_size(tile)
    if settings.glass != "keep":
        tissue = mask_under_tile(_job["mask"], _job["mask_ds"], level, settings.tile_size, col, row, width, height)
        if settings.glass == "zero" and not tissue.any():
            return b"", reference, None, False, None
        tile[:height, :width][~tissue] = source.background
    choice = _job["encoder"].encode(tile)
    p = choice.p_compress if isinstance(choice, AdaptiveChoice) else None
    return payload.pack(choice.codec.codec_id, choice.body), reference, choice.label, choice.fallback, p


def encode_slide(source_path: str | os.PathLike, output: str | os.PathLike, settings: EncodeSettings,
                 progress: bool = True) -> EncodeSummary:
    settings.check()
    source_path, output = Path(source_path), Path(output)
    started = time.monotonic()
    with open_source(source_path) as source:
        levels = plan_levels(*source.dimensions, settings.tile_size)
        mask, mask_ds = compute_mask(source)
        encoder = make_tile_encoder(settings)
        metadata = SlideMetadata(
            tile_size=settings.tile_size,
            levels=levels,
            background=tuple(int(c) for c in source.background),
            mpp=source.mpp,
            objective_power=source.objective_power,
            codecs=encoder.describe(),
            source={
                "name": source_path.name,
                "sha256": sha256_of(source_path),
                "bytes": source_path.stat().st_size,
                "vendor": source.vendor,
            },
            encoder={
                "codecs": settings.codecs,
                "glass": settings.glass,
                "target_ssim": settings.target_ssim,
                "floor": settings.floor,
                "fallback": settings.fallback,
                "mask_downsample": mask_ds,
                **({"keep_codec": encoder.keep_spec, "adaptive": encoder.policy_entry()}
                   if settings.adaptive else {}),
            },
        )
        associated = source.associated_images()
    tasks = [
        [(index, col, row) for row in range(level.tiles_down(settings.tile_size))
         for col in range(level.tiles_across(settings.tile_size))]
        for index, level in enumerate(levels)
    ]
    counts: Counter[str] = Counter()
    totals = {"glass": 0, "reference": 0, "fallback": 0, "compressed": 0}
    decisions: list[float | None] = []  # level 0's P(compress) per tile, row-major

    def collect(results, level_index: int):
        for stored, reference, label, fallback, p in results:
            totals["reference"] += reference
            totals["fallback"] += fallback
            totals["compressed"] += p is not None and p >= THRESHOLD
            if level_index == 0:
                decisions.append(p)
            if label is None:
                totals["glass"] += 1
            else:
                counts[label] += 1
            bar.update()
            yield stored

    init_args = (str(source_path), settings, mask, mask_ds, levels)
    bar = tqdm(total=sum(map(len, tasks)), unit="tile", disable=not progress, desc=output.name)
    pool = None
    try:
        if settings.workers > 1:
            context = multiprocessing.get_context("spawn")
            pool = context.Pool(settings.workers, initializer=_init_worker, initargs=init_args)
            run = lambda level_tasks: pool.imap(_encode_tile, level_tasks, chunksize=4)  # noqa: E731
        else:
            _init_worker(*init_args)
            run = lambda level_tasks: map(_encode_tile, level_tasks)  # noqa: E731
        with NeuralTiffWriter(output, settings.tile_size) as writer:
            for index, (level, level_tasks) in enumerate(zip(levels, tasks)):
                writer.add_level(level.width, level.height, collect(run(level_tasks), index))
            writer.add_page("tissue_mask", mask.astype(np.uint8) * 255)
            if settings.adaptive:
                grid = levels[0].tiles_across(settings.tile_size), levels[0].tiles_down(settings.tile_size)
                writer.add_page("decisions", decision_page(decisions, *grid))
            for name, image in associated.items():
                writer.add_page(name, image, compression="jpeg")
            metadata.stats = {
                "tiles": sum(map(len, tasks)),
                "glass_tiles": totals["glass"],
                "tiles_per_codec": dict(counts),
                "fallback_tiles": totals["fallback"],
                "reference_jpeg90_bytes": totals["reference"],
                **({"compressed_tiles": totals["compressed"]} if settings.adaptive else {}),
            }
            writer.finish(metadata)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        if "source" in _job:
            _job.pop("source").close()
    return EncodeSummary(
        output=output,
        source_bytes=source_path.stat().st_size,
        output_bytes=output.stat().st_size,
        reference_jpeg90_bytes=totals["reference"],
        tiles=sum(map(len, tasks)),
        glass_tiles=totals["glass"],
        tiles_per_codec=dict(counts),
        fallback_tiles=totals["fallback"],
        seconds=time.monotonic() - started,
        compressed_tiles=totals["compressed"] if settings.adaptive else None,
    )
