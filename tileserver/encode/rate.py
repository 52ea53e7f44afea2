"""Per-tile codec choice: rate control with a quality guard (the study's automatic fallback).

Given candidate codecs (in the order the user listed them), a target SSIM and a floor:
- every candidate is encoded and decoded through the real decode path and measured;
- a candidate below the floor, or larger than the fallback's payload, is never written;
- with a target, the smallest candidate at or above it wins; without one, the first allowed
  candidate wins;
- when none is allowed, the fallback codec (JPEG q90 by default) is written.
A single candidate that is itself the fallback is written as it is, with no measuring.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tileserver import codecs
from tileserver.codecs.base import Codec
from tileserver.quality import ssim

DEFAULT_FLOOR = 0.90
DEFAULT_FALLBACK = "jpeg:90"


@dataclass
class Choice:
    codec: Codec
    body: bytes
    label: str  # the spec that was chosen, as counted in the summary
    fallback: bool = False  # written because no candidate passed the guard


class TileEncoder:
    def __init__(
        self,
        specs: list[str],
        target_ssim: float | None = None,
        floor: float = DEFAULT_FLOOR,
        fallback: str = DEFAULT_FALLBACK,
        device: str = "cpu",
    ):
        self.candidates = [(spec, codecs.from_spec(spec, device)) for spec in specs]
        self.fallback_spec = fallback
        self.fallback = codecs.from_spec(fallback, device)
        self.target_ssim = target_ssim
        self.floor = floor
        self.measuring = not (len(specs) == 1 and specs[0] == fallback and target_ssim is None)

    def describe(self) -> list[dict]:
        entries = {spec: codec.describe() for spec, codec in self.candidates}
        entries.setdefault(self.fallback_spec, self.fallback.describe())
        return list(entries.values())

    def encode(self, tile: np.ndarray) -> Choice:
        if not self.measuring:
            return Choice(self.fallback, self.fallback.encode(tile), self.fallback_spec)
        fallback_body = self.fallback.encode(tile)
        allowed = []
        for spec, codec in self.candidates:
            body = fallback_body if spec == self.fallback_spec else codec.encode(tile)
            if spec != self.fallback_spec and len(body) > len(fallback_body):
                continue
            quality = ssim(tile, codec.decode(body))
            if quality >= self.floor:
                allowed.append((spec, codec, body, quality))
        if self.target_ssim is not None:
            meeting = [a for a in allowed if a[3] >= self.target_ssim]
            allowed = sorted(meeting, key=lambda a: len(a[2]))
        if not allowed:
            return Choice(self.fallback, fallback_body, self.fallback_spec, fallback=True)
        spec, codec, body, _ = allowed[0]
        return Choice(codec, body, spec)
