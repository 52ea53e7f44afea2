"""The one interface every tile codec implements.

A codec turns an RGB tile (H x W x 3, uint8) into a body of bytes and back. The format wraps
that body in a payload header (tileserver.format.payload) that carries the codec id, so a
decoder needs nothing but the body: whatever else it needs (a model name, the tile size) is in
the body itself.

Decoding is split in two stages so that the decode engine can pipeline and batch them:
``prepare`` runs on the CPU and may hold the GIL (entropy decoding); ``synthesize`` runs on the
selected device over a whole batch (a neural network). Classical codecs do all their work in
``prepare`` and return the pixels unchanged from ``synthesize``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np


class Codec(ABC):
    codec_id: int  # the id written in the payload header
    name: str  # the spec prefix: "jpeg" in "jpeg:90"
    # True when ``prepare`` holds the GIL for its whole run: the engine can then run it in worker
    # processes (serve --decode-processes), and what it returns must pickle.
    prepare_holds_gil: bool = False

    def __init__(self, setting: str | None = None, device: str = "cpu"):
        self.setting = setting
        self.device = device

    @abstractmethod
    def encode(self, tile: np.ndarray) -> bytes:
        """H x W x 3 uint8 -> codec body."""

    def batch_key(self, body: bytes) -> Hashable:
        """Bodies with equal keys can be decoded in one batch (learned codecs: same model)."""
        return self.codec_id

    @abstractmethod
    def prepare(self, body: bytes) -> Any:
        """CPU stage for one body; raises CodecError if the body cannot be decoded."""

    def synthesize(self, prepared: Sequence[Any]) -> list[np.ndarray]:
        """Device stage over a batch of prepared bodies -> H x W x 3 uint8 tiles."""
        return list(prepared)

    def decode_batch(self, bodies: Sequence[bytes]) -> list[np.ndarray]:
        return self.synthesize([self.prepare(b) for b in bodies])

    def decode(self, body: bytes) -> np.ndarray:
        return self.decode_batch([body])[0]

    def describe(self) -> dict:
        """The entry this codec adds to a slide's codec table (name, settings, model hash)."""
        return {"id": self.codec_id, "name": self.name, "setting": self.setting}

    @classmethod
    def check_entry(cls, entry: dict) -> None:
        """Called when a slide is opened, for each codec-table entry of this codec:
        raise ModelError if what the entry needs (a model file, its sha256) is not here."""
