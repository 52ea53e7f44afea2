"""What an OpenSeadragon viewport asks a IIIF 3.0 server for, and where the tissue is."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

VIEWPORT = (1280, 800)
TISSUE_DISTANCE = 85  # Euclidean RGB distance from white, as in the encoder's glass removal


@dataclass
class Slide:
    base: str  # /iiif/3/{escaped id}
    width: int
    height: int
    tile: int
    scale_factors: list[int]
    tissue: list[tuple[float, float]]  # tissue points as fractions of width and height


def tile_urls(slide: Slide, scale: int, center: tuple[float, float]) -> list[str]:
    """OpenSeadragon's IIIF 3.0 tile URLs for a viewport at ``scale`` (level-0 px per screen px)."""
    span = slide.tile * scale  # level-0 px covered by one tile
    level_w, level_h = math.ceil(slide.width / scale), math.ceil(slide.height / scale)
    if level_w < slide.tile and level_h < slide.tile:
        size = "max" if scale == 1 else f"{level_w},{level_h}"
        return [f"{slide.base}/full/{size}/0/default.jpg"]
    half_w, half_h = VIEWPORT[0] * scale / 2, VIEWPORT[1] * scale / 2
    cols = range(max(0, int((center[0] - half_w) // span)), min(math.ceil(slide.width / span), int((center[0] + half_w) // span) + 1))
    rows = range(max(0, int((center[1] - half_h) // span)), min(math.ceil(slide.height / span), int((center[1] + half_h) // span) + 1))
    urls = []
    for row in rows:
        for col in cols:
            x, y = col * span, row * span
            w, h = min(span, slide.width - x), min(span, slide.height - y)
            out_w, out_h = min(slide.tile, level_w - col * slide.tile), min(slide.tile, level_h - row * slide.tile)
            region = "full" if (x, y, w, h) == (0, 0, slide.width, slide.height) else f"{x},{y},{w},{h}"
            size = "max" if (out_w, out_h) == (slide.width, slide.height) else f"{out_w},{out_h}"
            urls.append(f"{slide.base}/{region}/{size}/0/default.jpg")
    return urls


def tissue_points(thumbnail: bytes) -> list[tuple[float, float]]:
    """Tissue pixels of a thumbnail as (x, y) fractions; the centre if there is none."""
    pixels = np.asarray(Image.open(io.BytesIO(thumbnail)).convert("RGB"), dtype=np.float32)
    distance = np.sqrt(((255.0 - pixels) ** 2).sum(axis=2))
    ys, xs = np.nonzero(distance > TISSUE_DISTANCE)
    if len(xs) == 0:
        return [(0.5, 0.5)]
    h, w = distance.shape
    return [((x + 0.5) / w, (y + 0.5) / h) for x, y in zip(xs.tolist(), ys.tolist())]
