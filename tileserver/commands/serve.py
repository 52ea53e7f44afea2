"""`tileserver serve DIR`: serve every slide under DIR (DeepZoom, IIIF 2.1/3.0, JSON API)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from tileserver.engine import DEVICES
from tileserver.errors import InputError

FACTORY = "tileserver.server.app:app_from_environment"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve the slides of a directory tree", description=__doc__)
    parser.add_argument("directory", type=Path, help="slide directory; slide ids are paths relative to it")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="decode device (default auto)")
    parser.add_argument("--cache-mb", type=int, default=1024,
                        help="decoded-tile + response cache size, per worker (default 1024)")
    parser.add_argument("--omero-prefix", default="/omero", help="path of the OMERO-web subset QuPath opens slides by (default /omero)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, each with its own decode engine and caches (default 1)")
    parser.add_argument("--redis", metavar="redis://HOST:PORT/DB", default=None,
                        help="Redis as a second response-cache tier shared by workers and replicas")
    parser.add_argument("--decode-processes", type=int, default=0,
                        help="processes per worker for entropy decoding of learned tiles (default 0: threads)")
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace):
    """The checked settings of a `tileserver serve` command line; InputError for bad ones."""
    from tileserver.engine import resolve_device
    from tileserver.server.settings import ServeSettings

    if not args.directory.is_dir():
        raise InputError(f"{args.directory}: not a directory")
    if args.cache_mb < 1:
        raise InputError("--cache-mb must be at least 1")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    if args.decode_processes < 0:
        raise InputError("--decode-processes must be 0 or more")
    if args.redis is not None:
        check_redis_url(args.redis)
    return ServeSettings(str(args.directory.resolve()), resolve_device(args.device), args.cache_mb,
                         args.omero_prefix, args.redis, args.decode_processes)


def check_redis_url(url: str) -> None:
    from redis.connection import parse_url

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise InputError(f"--redis {url!r}: expected redis://HOST:PORT/DB")
    try:
        parse_url(url)
    except ValueError as exc:
        raise InputError(f"--redis {url!r}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from tileserver.precision import CODEC_PRECISION_ENV, cpu_precision
    from tileserver.server.app import app_from_settings

    settings = settings_from(args)
    extras = [f"{args.workers} workers" if args.workers > 1 else "",
              f"{settings.decode_processes} decode processes each" if settings.decode_processes else "",
              f"shared cache {settings.redis_url}" if settings.redis_url else "",
              f"learned g_s in {cpu_precision(CODEC_PRECISION_ENV)}" if settings.device == "cpu" else ""]
    print(f"serving {settings.directory} on http://{args.host}:{args.port}/ (device {settings.device}"
          + "".join(f", {e}" for e in extras if e) + ")", flush=True)
    if args.workers == 1:
        try:
            app = app_from_settings(settings)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    os.environ.update(settings.to_env())  # the worker processes build their app from it
    uvicorn.run(FACTORY, factory=True, workers=args.workers, host=args.host, port=args.port, log_level="warning")
    return 0
