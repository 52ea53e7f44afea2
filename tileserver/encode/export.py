"""Export our format to a standard JPEG generic tiled TIFF that OpenSlide 4 opens.

Levels stay separate top-level pages (reduced ones NewSubfileType=1), zero-byte glass tiles
stay zero-byte (OpenSlide draws them transparent), JPEG tiles are copied as they are and
every other tile is decoded and re-encoded as JPEG. Written atomically like the encoder.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from tileserver import codecs
from tileserver.codecs import ids
from tileserver.errors import InputError
from tileserver.format.reader import NeuralTiff


def _jpeg(tile: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _level_tiles(slide: NeuralTiff, level: int, quality: int, device: str):
    """Row by row, so a row of learned tiles decodes as one batch."""
    across, down = slide.tile_grid(level)
    for row in range(down):
        payloads = [slide.tile_payload(level, col, row) for col in range(across)]
        to_decode = [p for p in payloads if p is not None and p[0] != ids.JPEG]
        decoded = iter(codecs.decode_many(to_decode, device))
        for item in payloads:
            if item is None:
                yield b""
            elif item[0] == ids.JPEG:
                yield item[1]
            else:
                yield _jpeg(next(decoded), quality)


def export_jpeg_tiff(source: str | os.PathLike, output: str | os.PathLike, quality: int = 90,
                     device: str = "cpu") -> Path:
    output = Path(output)
    with NeuralTiff(source) as slide:
        meta = slide.metadata
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent or ".")
        except OSError as exc:
            raise InputError(f"cannot write to {output.parent}: {exc.strerror}") from None
        os.close(fd)
        resolution = {}
        if meta.mpp:
            resolution = {"resolution": (1e4 / meta.mpp[0], 1e4 / meta.mpp[1]), "resolutionunit": "CENTIMETER"}
        try:
            with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
                for index, level in enumerate(meta.levels):
                    tif.write(
                        _level_tiles(slide, index, quality, device),
                        shape=(level.height, level.width, 3),
                        dtype=np.uint8,
                        tile=(meta.tile_size, meta.tile_size),
                        compression="jpeg",
                        photometric="ycbcr",
                        subsampling=(2, 2),
                        subfiletype=0 if index == 0 else 1,
                        description=f"exported by tileserver from {meta.source.get('name')}" if index == 0 else None,
                        metadata=None,
                        **resolution,
                    )
            os.chmod(tmp, 0o644)
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return output
