"""Open any source slide for reading region by region: OpenSlide first, then tiffslide, then Pillow.

Every reader answers the same small API (``SourceSlide``), with regions returned as RGB uint8
and transparent (unscanned) pixels composited on the slide's background colour.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from tileserver.errors import InputError

Image.MAX_IMAGE_PIXELS = 20_000 * 20_000  # plain images beyond this are slides: use a WSI format


class SourceSlide:
    """A slide as a list of levels. Subclasses fill the attributes and read_region."""

    vendor: str = "unknown"
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None
    background: tuple[int, int, int] = (255, 255, 255)

    def __init__(self, path: Path):
        self.path = path

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB pixels of ``level``; (x, y) in level-0 coordinates, size in level pixels."""
        raise NotImplementedError

    def associated_images(self) -> dict[str, np.ndarray]:
        return {}

    def best_level_for(self, downsample: float) -> int:
        """The lowest-resolution level still at or above the asked resolution (no upsampling,
        but a level at 2.0005 serves 2.0: level sizes are rounded)."""
        candidates = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * 1.01]
        return max(candidates, key=lambda i: self.level_downsamples[i]) if candidates else 0

    def close(self) -> None:
        pass

    def __enter__(self) -> "SourceSlide":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    if rgba.shape[2] == 3:
        return rgba
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    rgb = rgba[:, :, :3].astype(np.uint16)
    bg = np.asarray(background, dtype=np.uint16)
    return ((rgb * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)


class OpenSlideSource(SourceSlide):
    def __init__(self, path: Path):
        import openslide

        super().__init__(path)
        self._error = openslide.OpenSlideError
        self._slide = openslide.OpenSlide(str(path))
        props = self._slide.properties
        self.vendor = props.get(openslide.PROPERTY_NAME_VENDOR, "generic") or "generic"
        self.level_dimensions = list(self._slide.level_dimensions)
        self.level_downsamples = list(self._slide.level_downsamples)
        try:
            self.mpp = (
                float(props[openslide.PROPERTY_NAME_MPP_X]),
                float(props[openslide.PROPERTY_NAME_MPP_Y]),
            )
        except (KeyError, ValueError):
            self.mpp = None
        try:
            self.objective_power = float(props[openslide.PROPERTY_NAME_OBJECTIVE_POWER])
        except (KeyError, ValueError):
            self.objective_power = None
        colour = props.get(openslide.PROPERTY_NAME_BACKGROUND_COLOR)
        if colour and len(colour) == 6:
            self.background = tuple(int(colour[i : i + 2], 16) for i in (0, 2, 4))

    def read_region(self, level, x, y, width, height):
        try:
            region = self._slide.read_region((x, y), level, (width, height))
        except self._error as exc:
            raise InputError(f"{self.path.name}: cannot read pixels ({exc})") from None
        return _composite(np.asarray(region), self.background)

    def associated_images(self):
        return {
            name: np.asarray(image.convert("RGB"))
            for name, image in self._slide.associated_images.items()
            if name in ("label", "macro")
        }

    def close(self):
        self._slide.close()


class TiffSlideSource(SourceSlide):
    """For TIFFs OpenSlide does not read (OME-TIFF, our own format via the tifffile plugin)."""

    def __init__(self, path: Path):
        import tiffslide

        super().__init__(path)
        self._slide = tiffslide.TiffSlide(str(path))
        props = self._slide.properties
        self.vendor = props.get("tiffslide.vendor") or "tiff"
        self.level_dimensions = list(self._slide.level_dimensions)
        self.level_downsamples = list(self._slide.level_downsamples)
        mpp_x, mpp_y = props.get("tiffslide.mpp-x"), props.get("tiffslide.mpp-y")
        self.mpp = (float(mpp_x), float(mpp_y)) if mpp_x and mpp_y else None
        power = props.get("tiffslide.objective-power")
        self.objective_power = float(power) if power else None

    def read_region(self, level, x, y, width, height):
        try:
            region = self._slide.read_region((x, y), level, (width, height), as_array=True)
        except Exception as exc:
            raise InputError(f"{self.path.name}: cannot read pixels ({exc})") from None
        if region.ndim == 2:
            region = np.repeat(region[:, :, None], 3, axis=2)
        return _composite(region, self.background)

    def close(self):
        self._slide.close()


class PillowSource(SourceSlide):
    """A plain PNG, JPEG or TIFF image: one level, read whole (plain images are small)."""

    vendor = "image"

    def __init__(self, path: Path):
        super().__init__(path)
        with Image.open(path) as image:
            image.load()
            self._pixels = np.asarray(image.convert("RGBA"))
        self._pixels = _composite(self._pixels, self.background)
        height, width = self._pixels.shape[:2]
        self.level_dimensions = [(width, height)]
        self.level_downsamples = [1.0]

    def read_region(self, level, x, y, width, height):
        out = np.empty((height, width, 3), np.uint8)
        out[:] = self.background
        src = self._pixels[max(y, 0) : y + height, max(x, 0) : x + width]
        out[max(-y, 0) : max(-y, 0) + src.shape[0], max(-x, 0) : max(-x, 0) + src.shape[1]] = src
        return out


def open_source(path: str | os.PathLike) -> SourceSlide:
    """Open a source slide or image; InputError with one clear line if nothing can read it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    import openslide

    reasons = []
    if openslide.OpenSlide.detect_format(str(path)):
        try:
            return OpenSlideSource(path)
        except Exception as exc:
            reasons.append(f"OpenSlide: {exc}")
    for reader in (TiffSlideSource, PillowSource):
        try:
            return reader(path)
        except Exception as exc:
            reasons.append(f"{reader.__name__}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    raise InputError(f"{path}: not a slide or image that can be read ({'; '.join(reasons)})")
