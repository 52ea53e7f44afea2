"""`tileserver demo`: encode the shipped CMU-1 region (best codec and JPEG q90), serve it on 127.0.0.1."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from urllib.parse import quote

from tileserver.engine import DEVICES
from tileserver.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="encode and serve the shipped demo slide", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.add_argument("--codec", default=None,
                        help="codec to show off (default: the newest learned model in models/, else jxl:1.0)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the encoded slides are kept (default $XDG_CACHE_HOME/tileserver/demo)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="encoder processes")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="decode device (default auto)")
    parser.add_argument("--cache-mb", type=int, default=512, help="server tile cache size (default 512)")
    parser.add_argument("--no-serve", action="store_true", help="encode (or reuse) the slides and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tileserver.demo import COMPARISON_CODEC, best_codec, prepare

    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    codec = args.codec or best_codec()
    codecs = [codec] if codec == COMPARISON_CODEC else [codec, COMPARISON_CODEC]
    root, slides = prepare(codecs, args.cache_dir, workers=args.workers)
    base = f"http://127.0.0.1:{args.port}"
    print(f"demo slides in {root}:")
    for slide in slides:
        state = "encoded now" if slide.encoded_now else "cached"
        tiles = ", ".join(f"{n} {codec} tiles" for codec, n in slide.tiles_per_codec.items())
        label = "the shipped original" if slide.codec == "original" else f"{slide.codec}, {state}: {tiles}"
        print(f"  {base}/view/{quote(slide.slide_id)}   ({label})")
    if args.no_serve:
        return 0
    import uvicorn

    from tileserver.server.app import create_app

    app = create_app(root, device=args.device, cache_mb=args.cache_mb)
    print(f"open {base}/view/{quote(slides[1].slide_id)} (all slides: {base}/), Ctrl+C to stop")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0
