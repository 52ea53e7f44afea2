"""Write a tileserver-ntiff pyramid: BigTIFF, one top-level tiled page per level, atomically.

Tiles arrive as already-packed payloads (or b"" for glass) in row-major order, so the writer
streams: it never holds a level in memory. The file is written under a temporary name beside
the output and renamed into place only by ``finish``; anything else removes it.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile

from tileserver.errors import InputError
from tileserver.format.metadata import COMPRESSION_TAG, SlideMetadata

_PLACEHOLDER = "{}"


class NeuralTiffWriter:
    def __init__(self, output: str | os.PathLike, tile_size: int):
        self.output = Path(output)
        self.tile_size = tile_size
        self._levels = 0
        self._pages: dict[str, int] = {}
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.output.name}.", suffix=".part", dir=self.output.parent or "."
            )
        except OSError as exc:
            raise InputError(f"cannot write to {self.output.parent}: {exc.strerror}") from None
        os.close(fd)
        self._tmp = Path(tmp)
        self._tiff = tifffile.TiffWriter(self._tmp, bigtiff=True)

    def add_level(self, width: int, height: int, payloads: Iterable[bytes]) -> None:
        """One pyramid level; ``payloads`` yields every tile, row-major, b"" for glass."""
        if self._pages:
            raise RuntimeError("levels must be written before extra pages")
        self._tiff.write(
            iter(payloads),
            shape=(height, width, 3),
            dtype=np.uint8,
            tile=(self.tile_size, self.tile_size),
            compression="zlib",  # a stand-in: the tag is rewritten to COMPRESSION_TAG in finish
            photometric="rgb",
            subfiletype=0 if self._levels == 0 else 1,
            description=_PLACEHOLDER if self._levels == 0 else None,
            metadata=None,
        )
        self._levels += 1

    def add_page(self, name: str, image: np.ndarray, compression: str = "zlib") -> None:
        """A small untiled extra page (tissue mask, label, macro, decisions), found by name."""
        self._tiff.write(
            image, compression=compression, subfiletype=1, description=name, metadata=None
        )
        self._pages[name] = self._levels + len(self._pages)

    def finish(self, metadata: SlideMetadata) -> Path:
        """Write the metadata, fix the compression tags and move the file into place."""
        self._tiff.close()
        metadata.pages = dict(self._pages)
        with tifffile.TiffFile(self._tmp, mode="r+b") as tif:
            for page in tif.pages[: self._levels]:
                page.tags["Compression"].overwrite(COMPRESSION_TAG)
            tif.pages[0].tags["ImageDescription"].overwrite(metadata.to_json())
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.output)
        return self.output

    def abort(self) -> None:
        self._tiff.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "NeuralTiffWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._tmp.exists():
            self.abort()
