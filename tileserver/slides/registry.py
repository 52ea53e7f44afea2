"""The slides of a directory tree, by id: the path relative to the root, with "/" separators.

An id never reaches outside the root: absolute paths, empty, "." and ".." segments, hidden
names (the writer's temporary ".name.part" files) and NUL are refused before any file system
call, and the resolved real path (symlinks followed) must still lie inside the real root.
Open slides are kept by id together with the file's identity (device, inode, mtime, size):
a file replaced or rewritten is reopened on its next request, never served stale. A handle
that is dropped closes when the last request using it lets go of it.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from tileserver.errors import TileserverError
from tileserver.slides.tiled import TiledSlide, identity_of, open_tiled

log = logging.getLogger(__name__)

SLIDE_SUFFIXES = {
    ".tif", ".tiff", ".svs", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide",
    ".dcm", ".png", ".jpg", ".jpeg",
}


class SlideRegistry:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise TileserverError(f"{root}: not a directory")
        self._open: dict[str, TiledSlide] = {}
        self._failed: dict[str, tuple] = {}  # id -> identity of a file that is not a slide
        self._lock = threading.Lock()

    def resolve(self, slide_id: str) -> Path | None:
        """The real path of a slide id inside the root, or None."""
        if not slide_id or "\x00" in slide_id or "\\" in slide_id or slide_id.startswith("/"):
            return None
        parts = slide_id.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None
        real = Path(os.path.realpath(self.root.joinpath(*parts)))
        if real == self.root or not real.is_relative_to(self.root) or not real.is_file():
            return None
        return real

    def get(self, slide_id: str) -> TiledSlide | None:
        """The open slide for an id (reopened if its file changed), or None. Blocking."""
        path = self.resolve(slide_id)
        if path is None:
            return None
        try:
            identity = identity_of(path.stat())
        except OSError:
            self._open.pop(slide_id, None)
            return None
        with self._lock:
            slide = self._open.get(slide_id)
            if slide is not None and slide.identity == identity:
                return slide
            if self._failed.get(slide_id) == identity:
                return None
            try:
                slide = open_tiled(path)
            except Exception as exc:  # any file that no reader takes is simply not a slide
                log.warning("%s: not served: %s", slide_id, exc)
                self._failed[slide_id] = identity
                self._open.pop(slide_id, None)
                return None
            self._open[slide_id] = slide
            self._failed.pop(slide_id, None)
            return slide

    def ids(self) -> list[str]:
        """Ids of the files under the root that look like slides, sorted (not yet opened)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if not name.startswith(".") and Path(name).suffix.lower() in SLIDE_SUFFIXES:
                    slide_id = (rel / name).as_posix()
                    if self.resolve(slide_id) is not None:
                        found.append(slide_id)
        return sorted(found)
