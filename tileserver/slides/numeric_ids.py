"""Stable whole-number slide ids, for clients that accept only numbers (QuPath's OMERO reader).

A slide's number is derived from its slide id (the path relative to the root, "/"-separated):
the first 52 bits of its SHA-256, plus one. Derived rather than stored, so there is no table to
write (the slide directory may be read-only), to lose or to keep in step: the number survives
restarts, is the same on every server that serves the same tree, and fits a Java long and a
JavaScript number exactly. Renaming or moving a file changes its number, as it changes its
slide id.

The reverse lookup scans the registry. A number not in the last scan triggers a rescan (a slide
added since), at most once every RESCAN_SECONDS. Two slide ids with one number (odds about
1e-6 among 100,000 slides) make that number ambiguous: it finds neither, and it is logged.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time

from tileserver.slides.registry import SlideRegistry

log = logging.getLogger(__name__)

ID_BITS = 52
RESCAN_SECONDS = 1.0


def numeric_id(slide_id: str) -> int:
    """The number of a slide id: 1 to 2**52."""
    digest = hashlib.sha256(slide_id.encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - ID_BITS)) + 1


class NumericIds:
    """Number -> slide id over a registry. Blocking (it walks the slide tree)."""

    def __init__(self, registry: SlideRegistry):
        self.registry = registry
        self._by_number: dict[int, str | None] = {}  # None: ambiguous
        self._scanned_at = float("-inf")
        self._lock = threading.Lock()

    def slide_id(self, number: int) -> str | None:
        """The slide id with this number, or None (unknown or ambiguous)."""
        with self._lock:
            if number not in self._by_number and time.monotonic() - self._scanned_at >= RESCAN_SECONDS:
                self._scan()
            return self._by_number.get(number)

    def _scan(self) -> None:
        table: dict[int, str | None] = {}
        for slide_id in self.registry.ids():
            number = numeric_id(slide_id)
            if number in table:
                log.error("slides %r and %r share the number %d: it serves neither", table[number], slide_id, number)
                table[number] = None
            else:
                table[number] = slide_id
        self._by_number = table
        self._scanned_at = time.monotonic()
