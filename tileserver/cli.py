"""The `tileserver` command: parse arguments, hand off to tileserver.commands.<name>.

A user-facing failure (TileserverError) prints one line and exits 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from tileserver.errors import TileserverError

# Each module defines add_parser(subparsers) and sets func=run on its parser.
COMMAND_MODULES = [
    "train",
    "evaluate",
    "encode",
    "encode-batch",
    "info",
    "export",
    "verify",
    "serve",
    "demo",
    "loadtest",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tileserver", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tileserver.commands.{name.replace('-', '_')}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Building the parser imports torch, whose OpenMP runtime reads this once, at load. On a CPU
    # shared with other jobs (a training run beside an evaluation or a server), threads that
    # spin at barriers made torch 5-20x slower (training steps: 2-9 s against 0.4 s); the
    # decode benchmarks measure with passive waiting too.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except TileserverError as exc:
        print(f"tileserver {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tileserver {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
