"""`tileserver serve DIR`: serve every slide under DIR (DeepZoom, IIIF 2.1/3.0, JSON API)."""
from __future__ import annotations

import argparse
from pathlib import Path

from tileserver.engine import DEVICES
from tileserver.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve the slides of a directory tree", description=__doc__)
    parser.add_argument("directory", type=Path, help="slide directory; slide ids are paths relative to it")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="decode device (default auto)")
    parser.add_argument("--cache-mb", type=int, default=1024, help="decoded-tile + response cache size (default 1024)")
    parser.add_argument("--omero-prefix", default="/omero", help="path of the OMERO-web subset QuPath opens slides by (default /omero)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from tileserver.server.app import create_app

    if not args.directory.is_dir():
        raise InputError(f"{args.directory}: not a directory")
    if args.cache_mb < 1:
        raise InputError("--cache-mb must be at least 1")
    try:
        app = create_app(args.directory, device=args.device, cache_mb=args.cache_mb, omero_prefix=args.omero_prefix)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    print(f"serving {args.directory.resolve()} on http://{args.host}:{args.port}/ (device {app.state.engine.device})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
