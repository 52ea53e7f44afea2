"""The Starlette application: routes of every protocol over one registry and one engine."""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from tileserver.engine import DecodeEngine, ResponseCache
from tileserver.errors import TileserverError
from tileserver.server import api, deepzoom, iiif, omero, ops, pages
from tileserver.server.middleware import ServerMiddleware
from tileserver.slides.registry import SlideRegistry

log = logging.getLogger("tileserver.server")
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
RESPONSE_CACHE_SHARE = 0.25  # of --cache-mb; the rest holds decoded tiles


async def _http_error(request: Request, exc: HTTPException) -> PlainTextResponse:
    return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code, headers=exc.headers)


async def _tile_error(request: Request, exc: TileserverError) -> PlainTextResponse:
    """A tile that cannot be read or decoded fails alone: logged, 500, everything else serves."""
    log.error("%s: %s: %s", request.url.path, type(exc).__name__, exc)
    return PlainTextResponse(f"cannot produce this image: {exc}\n", status_code=500)


def _closing(engine: DecodeEngine):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        engine.close()

    return lifespan


def create_app(root: str | os.PathLike, device: str = "auto", cache_mb: int = 1024,
               engine: DecodeEngine | None = None, omero_prefix: str = omero.DEFAULT_PREFIX) -> Starlette:
    """The server for the slides under ``root``; ``engine`` replaces the default one (tests);
    the OMERO-web subset for QuPath is mounted at ``omero_prefix``."""
    cache_bytes = cache_mb << 20
    registry = SlideRegistry(root)
    engine = engine or DecodeEngine(device, cache_bytes=int(cache_bytes * (1 - RESPONSE_CACHE_SHARE)))
    routes = [
        *api.routes,
        *deepzoom.routes,
        *iiif.routes,
        *ops.routes,
        *pages.routes,
        omero.mount(omero_prefix, registry),
        Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ServerMiddleware, stats=engine.stats)],
        exception_handlers={HTTPException: _http_error, TileserverError: _tile_error},
        lifespan=_closing(engine),
    )
    app.state.registry = registry
    app.state.engine = engine
    app.state.omero_prefix = omero_prefix
    app.state.responses = ResponseCache(int(cache_bytes * RESPONSE_CACHE_SHARE), engine.stats)
    return app
