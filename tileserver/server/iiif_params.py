"""IIIF Image API 2.1 and 3.0 request parameters -> a region in level-0 pixels and an output
size; anything malformed or out of bounds raises IIIFError with the reason (a 400)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tileserver.server.imaging import FORMATS, QUALITIES

MAX_SIDE = 10_000  # maxWidth and maxHeight in info.json
MAX_AREA = 25_000_000  # maxArea: a quarter of MAX_SIDE squared keeps one request's memory bounded
_INT = r"(\d+)"
_NUM = r"(\d+(?:\.\d+)?)"


class IIIFError(ValueError):
    """A request the Image API says is malformed (400)."""


@dataclass(frozen=True)
class ImageRequest:
    region: tuple[int, int, int, int]  # x, y, w, h in level-0 pixels, inside the image
    size: tuple[int, int]
    rotation: float
    mirror: bool
    quality: str
    extension: str


def parse(region: str, size: str, rotation: str, quality_format: str, width: int, height: int,
          version: int) -> ImageRequest:
    reg = parse_region(region, width, height)
    out = parse_size(size, reg[2], reg[3], version)
    degrees, mirror = parse_rotation(rotation)
    quality, dot, extension = quality_format.rpartition(".")
    if not dot:
        raise IIIFError(f"{quality_format!r}: quality and format must be given as quality.format")
    if quality not in QUALITIES:
        raise IIIFError(f"quality {quality!r} is not one of {', '.join(QUALITIES)}")
    if extension not in FORMATS or extension == "jpeg":
        raise IIIFError(f"format {extension!r} is not one of jpg, png, webp, tif")
    return ImageRequest(reg, out, degrees, mirror, quality, extension)


def parse_region(text: str, width: int, height: int) -> tuple[int, int, int, int]:
    if text == "full":
        return 0, 0, width, height
    if text == "square":
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    if m := re.fullmatch(rf"pct:{_NUM},{_NUM},{_NUM},{_NUM}", text):
        px, py, pw, ph = map(float, m.groups())
        x, y = math.floor(px * width / 100), math.floor(py * height / 100)
        w, h = round(pw * width / 100), round(ph * height / 100)
    elif m := re.fullmatch(rf"{_INT},{_INT},{_INT},{_INT}", text):
        x, y, w, h = map(int, m.groups())
    else:
        raise IIIFError(f"region {text!r} is not full, square, x,y,w,h or pct:x,y,w,h")
    if w <= 0 or h <= 0:
        raise IIIFError(f"region {text!r} has no width or height")
    if x >= width or y >= height:
        raise IIIFError(f"region {text!r} lies outside the image ({width}x{height})")
    return x, y, min(w, width - x), min(h, height - y)


def parse_size(text: str, rw: int, rh: int, version: int) -> tuple[int, int]:
    upscale = text.startswith("^")
    if upscale and version < 3:
        raise IIIFError("size with ^ (upscaling) is IIIF 3.0 only")
    body = text[1:] if upscale else text
    if body == "full" and version < 3:
        w, h = rw, rh
    elif body == "max":
        limit = min(MAX_SIDE / rw, MAX_SIDE / rh, math.sqrt(MAX_AREA / (rw * rh)))
        scale = limit if upscale else min(1.0, limit)
        w, h = rw * scale, rh * scale
    elif m := re.fullmatch(rf"pct:{_NUM}", body):
        pct = float(m.group(1))
        if pct <= 0:
            raise IIIFError(f"size {text!r}: the percentage must be above 0")
        w, h = rw * pct / 100, rh * pct / 100
    elif m := re.fullmatch(rf"{_INT},", body):
        w = int(m.group(1))
        h = rh * w / rw
    elif m := re.fullmatch(rf",{_INT}", body):
        h = int(m.group(1))
        w = rw * h / rh
    elif m := re.fullmatch(rf"{_INT},{_INT}", body):
        w, h = map(int, m.groups())
    elif m := re.fullmatch(rf"!{_INT},{_INT}", body):
        bw, bh = map(int, m.groups())
        scale = min(bw / rw, bh / rh)
        if version < 3:  # 2.1 has no ^: a box larger than the region gives the region's size
            scale = min(scale, 1.0)
        w, h = rw * scale, rh * scale  # 3.0 without ^: upscaling is refused below, as the validator expects
    else:
        allowed = "max, w,, ,h, pct:n, w,h or !w,h" + (" (^ before any to upscale)" if version >= 3 else ", full")
        raise IIIFError(f"size {text!r} is not one of {allowed}")
    if w <= 0 or h <= 0:
        raise IIIFError(f"size {text!r} is empty")
    w, h = max(1, round(w)), max(1, round(h))
    if not upscale and (w > rw or h > rh):
        raise IIIFError(f"size {text!r} ({w}x{h}) is larger than the region ({rw}x{rh})"
                        + ("; prefix it with ^ to upscale" if version >= 3 else ""))
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_AREA:
        raise IIIFError(f"size {w}x{h} is above the limits (maxWidth/maxHeight {MAX_SIDE}, maxArea {MAX_AREA})")
    return w, h


def parse_rotation(text: str) -> tuple[float, bool]:
    m = re.fullmatch(rf"(!?){_NUM}", text)
    if not m or float(m.group(2)) > 360:
        raise IIIFError(f"rotation {text!r} is not a number of degrees from 0 to 360, optionally after !")
    return float(m.group(2)), bool(m.group(1))
