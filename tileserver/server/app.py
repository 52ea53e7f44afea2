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

from tileserver.engine import DecodeEngine, EngineStats, ResponseCache
from tileserver.engine.shared_cache import SharedCache
from tileserver.errors import TileserverError
from tileserver.server import api, deepzoom, iiif, omero, ops, pages
from tileserver.server.middleware import ServerMiddleware
from tileserver.server.settings import ServeSettings
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


def _closing(engine: DecodeEngine, responses: ResponseCache):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await responses.close()
        engine.close()

    return lifespan


def create_app(root: str | os.PathLike, device: str = "auto", cache_mb: int = 1024,
               engine: DecodeEngine | None = None, omero_prefix: str = omero.DEFAULT_PREFIX,
               redis_url: str | None = None, decode_processes: int = 0) -> Starlette:
    """The server for the slides under ``root``; ``engine`` replaces the default one (tests);
    the OMERO-web subset for QuPath is mounted at ``omero_prefix``; ``redis_url`` adds Redis
    as the responses' shared second tier; ``decode_processes`` runs entropy decoding in that
    many processes."""
    cache_bytes = cache_mb << 20
    registry = SlideRegistry(root)
    stats = engine.stats if engine else EngineStats()
    shared = SharedCache(redis_url, stats) if redis_url else None  # first: a bad URL starts nothing
    engine = engine or DecodeEngine(device, cache_bytes=int(cache_bytes * (1 - RESPONSE_CACHE_SHARE)),
                                    stats=stats, decode_processes=decode_processes)
    responses = ResponseCache(int(cache_bytes * RESPONSE_CACHE_SHARE), engine.stats, shared)
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
        lifespan=_closing(engine, responses),
    )
    app.state.registry = registry
    app.state.engine = engine
    app.state.omero_prefix = omero_prefix
    app.state.responses = responses
    return app


def app_from_settings(settings: ServeSettings) -> Starlette:
    return create_app(settings.directory, device=settings.device, cache_mb=settings.cache_mb,
                      omero_prefix=settings.omero_prefix, redis_url=settings.redis_url,
                      decode_processes=settings.decode_processes)


def app_from_environment() -> Starlette:
    """The factory uvicorn's worker processes call (``tileserver serve --workers N``)."""
    return app_from_settings(ServeSettings.from_env())
