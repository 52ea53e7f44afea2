"""Read a tileserver-ntiff file: metadata, and raw tile payloads by (level, col, row).

Tile bytes are read with os.pread on a descriptor of our own, so any number of threads can
read at once without a lock. Nothing here decodes: that is the codecs' job.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from tileserver import codecs
from tileserver.errors import InputError
from tileserver.format import payload
from tileserver.format.metadata import COMPRESSION_TAG, Level, SlideMetadata


def is_neural_tiff(path: str | os.PathLike) -> bool:
    """Cheap test used to route a file to this reader or to OpenSlide."""
    try:
        with tifffile.TiffFile(path) as tif:
            return tif.pages[0].compression == COMPRESSION_TAG
    except Exception:
        return False


class NeuralTiff:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            tif = tifffile.TiffFile(self.path)
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except Exception as exc:
            raise InputError(f"{self.path}: not a readable TIFF ({exc})") from None
        try:
            first = tif.pages[0]
            if first.compression != COMPRESSION_TAG:
                raise InputError(f"{self.path}: not a tileserver-ntiff file")
            self.metadata = SlideMetadata.from_json(first.description)
            self._offsets, self._counts = [], []
            for index, level in enumerate(self.metadata.levels):
                page = tif.pages[index]
                if (page.imagewidth, page.imagelength) != (level.width, level.height):
                    raise InputError(f"{self.path}: level {index} size disagrees with metadata")
                self._offsets.append(np.asarray(page.dataoffsets, dtype=np.int64))
                self._counts.append(np.asarray(page.databytecounts, dtype=np.int64))
            self._check_tiles_inside(os.path.getsize(self.path))
        finally:
            tif.close()
        for entry in self.metadata.codecs:
            codecs.class_for(entry["id"]).check_entry(entry)
        self._fd = os.open(self.path, os.O_RDONLY)
        self.stat = os.fstat(self._fd)

    def _check_tiles_inside(self, file_size: int) -> None:
        for offsets, counts in zip(self._offsets, self._counts):
            if len(counts) and int((offsets + counts).max()) > file_size:
                raise InputError(f"{self.path}: file is truncated (tiles lie past its end)")

    @property
    def tile_size(self) -> int:
        return self.metadata.tile_size

    @property
    def levels(self) -> list[Level]:
        return self.metadata.levels

    def tile_grid(self, level: int) -> tuple[int, int]:
        info = self.metadata.levels[level]
        return info.tiles_across(self.tile_size), info.tiles_down(self.tile_size)

    def tile_bytes(self, level: int, col: int, row: int) -> bytes:
        """The stored bytes of one tile: b"" for glass, else a packed payload."""
        across, down = self.tile_grid(level)
        if not (0 <= col < across and 0 <= row < down):
            raise IndexError(f"tile {col},{row} is outside level {level} ({across}x{down})")
        index = row * across + col
        count = int(self._counts[level][index])
        return os.pread(self._fd, count, int(self._offsets[level][index])) if count else b""

    def tile_payload(self, level: int, col: int, row: int) -> tuple[int, bytes] | None:
        """(codec id, body) after the CRC check, or None for glass. Raises CorruptTileError."""
        data = self.tile_bytes(level, col, row)
        return payload.unpack(data) if data else None

    def page(self, name: str) -> np.ndarray | None:
        """An extra page by name (tissue_mask, label, macro, decisions), or None."""
        index = self.metadata.pages.get(name)
        if index is None:
            return None
        with tifffile.TiffFile(self.path) as tif:
            return tif.pages[index].asarray()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "NeuralTiff":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
