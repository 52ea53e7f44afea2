"""A slide file's content identity, one that every replica computes alike.

The engine keys its in-process caches by (device, inode, mtime, size), which differ between
machines. The shared cache needs a key that replicas agree on and that changes whenever the
file does: blake2b of the size, the mtime in ns, and the first and last 64 KiB. A rewrite or a
replacement changes the mtime; the bytes at both ends (the TIFF header, the last tiles and
tables) also tell apart two files that were given the same size and mtime. Replicas that mount
one slide directory (NFS, a bind mount) agree; copies whose mtimes were not kept share nothing.
"""
from __future__ import annotations

import hashlib
import os
import struct
import threading
from pathlib import Path

from cachetools import LRUCache

from tileserver.slides.tiled import Identity, identity_of

EDGE_BYTES = 64 << 10
_known: LRUCache = LRUCache(maxsize=4096)
_lock = threading.Lock()


def known_content_id(path: Path, identity: Identity) -> str | None:
    """The content id if it was computed already, else None. Never touches the disk."""
    with _lock:
        return _known.get((path, identity))


def content_id(path: Path, identity: Identity) -> str | None:
    """The content id of the file at ``path`` if it is still the file with ``identity``, else None
    (it was replaced since the slide was opened: the caller must not use a shared entry). Blocking."""
    known = known_content_id(path, identity)
    if known is not None:
        return known
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            if identity_of(st) != identity:
                return None
            head = handle.read(EDGE_BYTES)
            handle.seek(max(0, st.st_size - EDGE_BYTES))
            tail = handle.read(EDGE_BYTES)
    except OSError:
        return None
    digest = hashlib.blake2b(struct.pack("<QQ", st.st_size, st.st_mtime_ns) + head + tail, digest_size=16)
    with _lock:
        _known[(path, identity)] = digest.hexdigest()
    return digest.hexdigest()
