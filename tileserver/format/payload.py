"""The self-describing tile payload: a 16-byte header, then the codec's bytes.

    offset size field
    0      4    magic b"NTIL"
    4      1    header version (1)
    5      1    codec id (see tileserver.codecs.ids)
    6      2    flags, reserved (0)
    8      4    body length, uint32 little-endian
    12     4    CRC32 of the body, uint32 little-endian
    16     n    body

A zero-length tile is not a payload: it is glass and never reaches this module.
"""
from __future__ import annotations

import struct
import zlib

from tileserver.errors import CorruptTileError

MAGIC = b"NTIL"
HEADER_VERSION = 1
_HEADER = struct.Struct("<4sBBHII")
HEADER_SIZE = _HEADER.size


def pack(codec_id: int, body: bytes) -> bytes:
    """Wrap a codec's bytes in the header."""
    return _HEADER.pack(MAGIC, HEADER_VERSION, codec_id, 0, len(body), zlib.crc32(body)) + body


def unpack(data: bytes) -> tuple[int, bytes]:
    """Check the header and CRC; return (codec id, body). Raises CorruptTileError."""
    if len(data) < HEADER_SIZE:
        raise CorruptTileError(f"tile payload of {len(data)} bytes is shorter than its header")
    magic, version, codec_id, _flags, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptTileError("tile payload has no NTIL magic")
    if version != HEADER_VERSION:
        raise CorruptTileError(f"tile payload header version {version} is not supported")
    body = data[HEADER_SIZE:]
    if len(body) != length:
        raise CorruptTileError(f"tile payload body is {len(body)} bytes, header says {length}")
    if zlib.crc32(body) != crc:
        raise CorruptTileError("tile payload CRC32 does not match: the tile is corrupt")
    return codec_id, bytes(body)
