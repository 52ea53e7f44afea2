"""The served slide: one tiled power-of-two pyramid, whatever the file.

``StoredSlide`` is our format: ``fetch`` returns the stored payload, which the decode engine
hands to its codec. ``SourceTiledSlide`` is any slide OpenSlide, tiffslide or Pillow reads:
``fetch`` returns pixels read with read_region from the nearest native level, resized onto the
same tile grid. Both are blocking and thread-safe; the engine calls them from its thread pool.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tileserver.format.reader import NeuralTiff, is_neural_tiff
from tileserver.slides.source import SourceSlide, open_source
from tileserver.slides.tiles import Pyramid

SOURCE_TILE_SIZE = 256
Identity = tuple[int, int, int, int]  # st_dev, st_ino, st_mtime_ns, st_size


def identity_of(st: os.stat_result) -> Identity:
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


@dataclass(frozen=True)
class Encoded:
    """A stored tile still to be decoded by codec ``codec_id``."""

    codec_id: int
    body: bytes


class TiledSlide:
    """What every protocol adapter and the engine see of a slide."""

    kind: str
    pyramid: Pyramid
    background: tuple[int, int, int]
    mpp: tuple[float, float] | None
    identity: Identity
    has_decisions = False  # a ``decisions`` page (adaptive codec): see decisions()

    def __init__(self, path: Path):
        self.path = path

    def fetch(self, level: int, col: int, row: int) -> np.ndarray | Encoded | None:
        """Tile pixels (valid size), an Encoded payload, or None for glass."""
        raise NotImplementedError

    def decisions(self) -> np.ndarray | None:
        """Level 0's per-tile P(compress) of the adaptive codec (NaN for glass), or None."""
        return None

    def describe(self) -> dict:
        """JSON metadata for /api/slides/{id}."""
        levels = [
            {"width": w, "height": h, "downsample": 2**k}
            for k in range(self.pyramid.level_count)
            for w, h in [self.pyramid.level_size(k)]
        ]
        return {
            "kind": self.kind,
            "width": self.pyramid.width,
            "height": self.pyramid.height,
            "tile_size": self.pyramid.tile_size,
            "levels": levels,
            "mpp": list(self.mpp) if self.mpp else None,
            "background": list(self.background),
            "bytes": self.identity[3],
        }


class StoredSlide(TiledSlide):
    kind = "neural-tiff"

    def __init__(self, path: Path):
        super().__init__(path)
        self.reader = NeuralTiff(path)
        weakref.finalize(self, self.reader.close)
        meta = self.reader.metadata
        self.metadata = meta
        self.pyramid = Pyramid(meta.levels[0].width, meta.levels[0].height, meta.tile_size, len(meta.levels))
        self.background = tuple(meta.background)
        self.mpp = meta.mpp
        self.identity = identity_of(self.reader.stat)
        self.has_decisions = "decisions" in meta.pages

    def fetch(self, level, col, row):
        stored = self.reader.tile_payload(level, col, row)
        return None if stored is None else Encoded(*stored)

    def decisions(self):
        return self.reader.page("decisions") if self.has_decisions else None

    def describe(self):
        doc = super().describe()
        stats, size = self.metadata.stats, self.identity[3]
        tissue = stats.get("tiles", 0) - stats.get("glass_tiles", 0)
        per_codec = stats.get("tiles_per_codec", {})
        doc.update(
            codecs=self.metadata.codecs,
            tiles=stats.get("tiles"),
            glass_tiles=stats.get("glass_tiles"),
            tiles_per_codec=per_codec,
            codec_mix={name: n / tissue for name, n in per_codec.items()} if tissue else {},
            source=self.metadata.source,
            ratio_vs_source=_ratio(self.metadata.source.get("bytes"), size),
            ratio_vs_jpeg90=_ratio(stats.get("reference_jpeg90_bytes"), size),
        )
        if "adaptive" in self.metadata.encoder:
            doc["adaptive"] = {**self.metadata.encoder["adaptive"], "compressed_tiles": stats.get("compressed_tiles")}
        return doc


def _ratio(reference: int | None, size: int) -> float | None:
    return round(reference / size, 3) if reference and size else None


class SourceTiledSlide(TiledSlide):
    kind = "source"

    def __init__(self, path: Path):
        super().__init__(path)
        self.identity = identity_of(path.stat())
        self.source: SourceSlide = open_source(path)
        weakref.finalize(self, self.source.close)
        width, height = self.source.dimensions
        self.pyramid = Pyramid.for_size(width, height, SOURCE_TILE_SIZE)
        self.background = tuple(int(c) for c in self.source.background)
        self.mpp = self.source.mpp

    def fetch(self, level, col, row):
        t, scale = self.pyramid.tile_size, 2**level
        out_w, out_h = self.pyramid.tile_size_at(level, col, row)
        native = self.source.best_level_for(scale)
        factor = scale / self.source.level_downsamples[native]
        read_w, read_h = max(1, round(out_w * factor)), max(1, round(out_h * factor))
        pixels = self.source.read_region(native, col * t * scale, row * t * scale, read_w, read_h)
        if (read_w, read_h) != (out_w, out_h):
            pixels = np.asarray(Image.fromarray(pixels).resize((out_w, out_h), Image.Resampling.LANCZOS))
        return pixels

    def describe(self):
        doc = super().describe()
        doc.update(vendor=self.source.vendor, source_levels=[list(d) for d in self.source.level_dimensions])
        return doc


def open_tiled(path: Path) -> TiledSlide:
    """Our format through the engine's codecs; anything else through OpenSlide and friends."""
    return StoredSlide(path) if is_neural_tiff(path) else SourceTiledSlide(path)
