"""The slide metadata document, stored as JSON in page 0's ImageDescription (docs/FORMAT.md)."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from tileserver.errors import InputError

FORMAT_NAME = "tileserver-ntiff"
FORMAT_VERSION = 1
COMPRESSION_TAG = 65100  # private TIFF Compression value: "payload header + codec body" tiles
ALLOWED_TILE_SIZES = (240, 256, 512)


@dataclass(frozen=True)
class Level:
    width: int
    height: int
    downsample: float

    def tiles_across(self, tile_size: int) -> int:
        return math.ceil(self.width / tile_size)

    def tiles_down(self, tile_size: int) -> int:
        return math.ceil(self.height / tile_size)


@dataclass
class SlideMetadata:
    tile_size: int
    levels: list[Level]
    background: tuple[int, int, int] = (255, 255, 255)
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None
    codecs: list[dict] = field(default_factory=list)  # codec/model table
    source: dict = field(default_factory=dict)  # name, sha256, bytes, vendor
    encoder: dict = field(default_factory=dict)  # the settings the encoder ran with
    stats: dict = field(default_factory=dict)  # tiles, glass_tiles, tiles_per_codec, bytes
    pages: dict[str, int] = field(default_factory=dict)  # "tissue_mask", "label", ... -> page index
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "SlideMetadata":
        try:
            doc = json.loads(text)
        except (TypeError, ValueError):
            raise InputError("ImageDescription is not tileserver metadata JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise InputError(f"not a {FORMAT_NAME} file")
        if doc.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"{FORMAT_NAME} version {doc.get('format_version')} is not supported "
                f"(this tileserver reads version {FORMAT_VERSION})"
            )
        try:
            doc["levels"] = [Level(**level) for level in doc["levels"]]
            doc["background"] = tuple(doc["background"])
            doc["mpp"] = tuple(doc["mpp"]) if doc.get("mpp") else None
            return cls(**doc)
        except (KeyError, TypeError) as exc:
            raise InputError(f"metadata is incomplete or malformed: {exc}") from None
