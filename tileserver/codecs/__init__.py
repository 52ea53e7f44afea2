"""Codec registry: by id for decoding (payloads say which), by spec ("jpeg:90") for encoding.

A new codec arrives by registration: ``register(MyCodec)``. Nothing else changes.
"""
from __future__ import annotations

from functools import lru_cache

from tileserver.codecs.base import Codec
from tileserver.codecs.classical import JpegCodec, JpegXlCodec
from tileserver.codecs.learned import LearnedCodec
from tileserver.codecs.sr4 import Sr4Codec
from tileserver.errors import CodecError

_BY_ID: dict[int, type[Codec]] = {}
_BY_NAME: dict[str, type[Codec]] = {}


def register(codec_class: type[Codec]) -> type[Codec]:
    _BY_ID[codec_class.codec_id] = codec_class
    _BY_NAME[codec_class.name] = codec_class
    return codec_class


def from_spec(spec: str, device: str = "cpu") -> Codec:
    """'jpeg:90', 'jxl:1.0', 'learned:NAME' -> an encoder (it decodes too)."""
    name, _, setting = spec.partition(":")
    codec_class = _BY_NAME.get(name.strip().lower())
    if codec_class is None:
        raise CodecError(f"unknown codec {name!r}; known: {', '.join(sorted(_BY_NAME))}")
    try:
        return codec_class(setting.strip() or None, device=device)
    except ValueError as exc:
        raise CodecError(f"bad setting in codec spec {spec!r}: {exc}") from None


@lru_cache(maxsize=None)
def decoder(codec_id: int, device: str = "cpu") -> Codec:
    """The shared decoding instance for a codec id (bodies carry their own settings)."""
    codec_class = _BY_ID.get(codec_id)
    if codec_class is None:
        raise CodecError(f"unknown codec id {codec_id}")
    return codec_class(None, device=device)


def class_for(name_or_id: str | int) -> type[Codec]:
    table = _BY_ID if isinstance(name_or_id, int) else _BY_NAME
    if name_or_id not in table:
        raise CodecError(f"unknown codec {name_or_id!r}")
    return table[name_or_id]


register(JpegCodec)
register(JpegXlCodec)
register(Sr4Codec)
register(LearnedCodec)


def decode_many(payloads: list[tuple[int, bytes]], device: str = "cpu") -> list:
    """Decode (codec id, body) pairs, batching bodies that share a codec and batch key.

    The offline path (export, evaluation, tests). The server goes through its decode engine.
    """
    groups: dict = {}
    for index, (codec_id, body) in enumerate(payloads):
        codec = decoder(codec_id, device)
        groups.setdefault((codec_id, codec.batch_key(body)), []).append(index)
    out: list = [None] * len(payloads)
    for (codec_id, _), indices in groups.items():
        tiles = decoder(codec_id, device).decode_batch([payloads[i][1] for i in indices])
        for i, tile in zip(indices, tiles):
            out[i] = tile
    return out
