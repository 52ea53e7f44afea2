"""`tileserver verify FILE [--decode]`: check every tile's header and CRC (and optionally decode it)."""
from __future__ import annotations

import sys

from tileserver import codecs
from tileserver.errors import TileserverError
from tileserver.format.reader import NeuralTiff


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="check every tile of a neural-tile TIFF for corruption")
    parser.add_argument("file")
    parser.add_argument("--decode", action="store_true", help="also decode every tile")
    parser.set_defaults(func=run)


def run(args) -> int:
    bad = checked = 0
    with NeuralTiff(args.file) as slide:
        for level in range(len(slide.levels)):
            across, down = slide.tile_grid(level)
            for row in range(down):
                for col in range(across):
                    checked += 1
                    try:
                        item = slide.tile_payload(level, col, row)
                        if item is not None and args.decode:
                            codecs.decoder(item[0]).decode(item[1])
                    except TileserverError as exc:
                        bad += 1
                        print(f"level {level} tile {col},{row}: corrupt: {exc}", file=sys.stderr)
    print(f"{args.file}: {checked} tiles checked, {bad} corrupt")
    return 1 if bad else 0
