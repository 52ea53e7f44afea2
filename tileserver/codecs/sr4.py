"""The SR4 codec: the tile reduced 4x, stored small, restored by an enhancer when read.

Body (after the payload header):

    size  field
    1     body version (1)
    1     low-res storage kind (tileserver.sr.storage)
    1     n = length of the enhancer model name
    n     model name, UTF-8 (models/<name>.pt)
    ...   the low-res image in that storage, to the end

Spec ``sr4`` (the shipped enhancer and storage), ``sr4:MODEL`` or ``sr4:MODEL:STORAGE``.
``prepare`` decodes the low-res image on the CPU; ``synthesize`` runs the enhancer over a batch
on the codec's device (tileserver.sr.runtime). torch is imported only when a tile is coded.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from tileserver.codecs import ids
from tileserver.codecs.base import Codec
from tileserver.codecs.learned_models import check_model
from tileserver.errors import CodecError, ModelError
from tileserver.sr.scale import SCALE, downscale
from tileserver.sr.storage import decode_small, storage

BODY_VERSION = 1
DEFAULT_MODEL = "sr4-rrdb-b4f32g16"
DEFAULT_STORAGE = "jxl0.5"


@dataclass
class PreparedSmall:
    enhancer: "Enhancer"  # noqa: F821 (tileserver.sr.models, imported lazily)
    small: np.ndarray  # h x w x 3 uint8


def pack_body(model_name: str, kind: int, data: bytes) -> bytes:
    name = model_name.encode()
    return bytes([BODY_VERSION, kind, len(name)]) + name + data


def unpack_body(body: bytes) -> tuple[str, int, bytes]:
    """-> (model name, storage kind, low-res image bytes); CodecError if malformed."""
    if len(body) < 3 or body[0] != BODY_VERSION:
        raise CodecError("SR4 tile body is truncated or has an unknown version")
    end = 3 + body[2]
    if len(body) <= end:
        raise CodecError("SR4 tile body is truncated")
    return body[3:end].decode("utf-8", "replace"), body[1], body[end:]


class Sr4Codec(Codec):
    codec_id = ids.SR4
    name = "sr4"

    def __init__(self, setting: str | None = None, device: str = "cpu"):
        super().__init__(setting or DEFAULT_MODEL, device)
        model_name, _, storage_name = self.setting.partition(":")
        self.model_name = model_name or DEFAULT_MODEL
        self.storage = storage(storage_name or DEFAULT_STORAGE)

    @staticmethod
    def _enhancer(name: str):
        from tileserver.sr.models import load_enhancer

        return load_enhancer(name)

    def encode(self, tile: np.ndarray) -> bytes:
        if tile.shape[0] % SCALE or tile.shape[1] % SCALE:
            raise CodecError(f"SR4 needs tile sides divisible by {SCALE}, not {tile.shape[:2]}")
        return pack_body(self.model_name, self.storage.kind, self.storage.encode(downscale(tile)))

    def batch_key(self, body: bytes) -> Hashable:
        return self.codec_id, unpack_body(body)[0]

    def prepare(self, body: bytes) -> PreparedSmall:
        model_name, kind, data = unpack_body(body)
        small = decode_small(kind, data)
        try:
            enhancer = self._enhancer(model_name)
        except ModelError as exc:
            raise CodecError(f"SR4 tile cannot be restored: {exc}") from None
        return PreparedSmall(enhancer, small)

    def synthesize(self, prepared: Sequence[PreparedSmall]) -> list[np.ndarray]:
        """The enhancer over the batch, one call per (model, low-res shape) group."""
        import torch

        from tileserver.sr.runtime import runner

        out: list[np.ndarray | None] = [None] * len(prepared)
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(prepared):
            groups.setdefault((id(item.enhancer), item.small.shape), []).append(i)
        for members in groups.values():
            smalls = np.stack([prepared[i].small for i in members])
            x = torch.from_numpy(smalls).permute(0, 3, 1, 2).float().div_(255)
            tiles = runner(prepared[members[0]].enhancer, self.device)(x)
            for i, tile in zip(members, tiles):
                out[i] = np.rint(tile.transpose(1, 2, 0) * 255).astype(np.uint8)
        return out

    def describe(self) -> dict:
        enhancer = self._enhancer(self.model_name)
        return {**super().describe(), "model": enhancer.name, "sha256": enhancer.sha256,
                "storage": self.storage.name,
                **{k: enhancer.config.get(k) for k in ("arch", "blocks", "features", "growth")}}

    @classmethod
    def check_entry(cls, entry: dict) -> None:
        if not entry.get("model") or not entry.get("sha256"):
            raise ModelError(f"SR4 codec entry {entry} names no model or sha256")
        check_model(entry["model"], entry["sha256"])
