"""``--codec adaptive:λ``: the decision agent keeps a tile (keep codec) or compresses it (SR4).

Same interface as TileEncoder (``encode(tile) -> Choice``, ``describe()``); each choice also
carries the policy's P(compress), which the encoder stores as the ``decisions`` page. A tile is
compressed when P(compress) >= 0.5. Kept tiles go through a TileEncoder over the keep codec(s),
so the quality guard (floor, fallback, target SSIM) applies to them as with ``--codec KEEP``.
Compressed tiles are never guarded: a 4x restoration is far below any SSIM floor (about 0.74),
so a guard would overturn every decision; sparing the tiles whose nuclei would suffer is the
agent's job.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tileserver import codecs
from tileserver.encode.rate import DEFAULT_FALLBACK, DEFAULT_FLOOR, Choice, TileEncoder
from tileserver.errors import CodecError
from tileserver.sr.policy import check_lmbda, load_policy

NAME = "adaptive"
DEFAULT_LMBDA = 0.5
DEFAULT_KEEP = "jpeg:90"
DEFAULT_SR4 = "sr4"
DEFAULT_POLICY = "cda-b32v2"
THRESHOLD = 0.5


@dataclass
class AdaptiveChoice(Choice):
    p_compress: float = 0.0


def is_adaptive(spec: str) -> bool:
    return spec.partition(":")[0].strip().lower() == NAME


def parse_lmbda(spec: str) -> float:
    """'adaptive:0.5' -> 0.5; 'adaptive' -> the default λ."""
    setting = spec.partition(":")[2].strip()
    try:
        return check_lmbda(float(setting) if setting else DEFAULT_LMBDA)
    except ValueError as exc:
        raise CodecError(f"bad codec spec {spec!r}: {exc}") from None


class AdaptiveTileEncoder:
    """``keep``: one spec or a comma-separated list of rate-control candidates for kept tiles."""

    def __init__(self, lmbda: float = DEFAULT_LMBDA, keep: str = DEFAULT_KEEP, sr4: str = DEFAULT_SR4,
                 policy: str = DEFAULT_POLICY, device: str = "cpu", target_ssim: float | None = None,
                 floor: float = DEFAULT_FLOOR, fallback: str = DEFAULT_FALLBACK):
        self.lmbda = check_lmbda(lmbda)
        self.keep_spec = keep
        specs = [s.strip() for s in keep.split(",") if s.strip()]
        if any(s.partition(":")[0].strip().lower() in (NAME, "sr4") for s in specs):
            raise CodecError(f"--keep-codec {keep!r}: the keep codec cannot be adaptive or sr4")
        self.keep = TileEncoder(specs, target_ssim, floor, fallback, device)
        self.sr4_spec, self.sr4 = sr4, codecs.from_spec(sr4, device)
        self.policy = load_policy(policy)

    def describe(self) -> list[dict]:
        """The codec-table entries: the keep codec(s), the fallback, and SR4 (with its enhancer's sha256)."""
        return [*self.keep.describe(), self.sr4.describe()]

    def policy_entry(self) -> dict:
        """What the slide's encoder settings should record about the decisions."""
        return {"policy": self.policy.name, "sha256": self.policy.sha256, "lmbda": self.lmbda,
                "threshold": THRESHOLD, "keep": self.keep_spec, "sr4": self.sr4_spec}

    def p_compress(self, tiles: list[np.ndarray]) -> np.ndarray:
        """On one torch thread: for a tile or two, thread hand-offs cost ten times the work."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.policy.p_compress(tiles, self.lmbda)
        finally:
            torch.set_num_threads(threads)

    def encode(self, tile: np.ndarray) -> AdaptiveChoice:
        p = float(self.p_compress([tile])[0])
        if p >= THRESHOLD:
            return AdaptiveChoice(self.sr4, self.sr4.encode(tile), self.sr4_spec, p_compress=p)
        kept = self.keep.encode(tile)
        return AdaptiveChoice(kept.codec, kept.body, kept.label, kept.fallback, p_compress=p)


def decision_page(probabilities: list[float | None], across: int, down: int) -> np.ndarray:
    """A level's P(compress) per tile, row-major, as a down x across float32 page; NaN for glass."""
    values = [np.nan if p is None else p for p in probabilities]
    return np.asarray(values, np.float32).reshape(down, across)
