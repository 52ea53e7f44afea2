"""A read-only OMERO-web subset under a prefix (/omero), enough for QuPath's OMERO extension to
open any slide anonymously: File > Open URI, ``http://HOST:PORT/omero/webclient/?show=image-N``.

N is the slide's stable number (tileserver.slides.numeric_ids). Tiles and thumbnails come from
the decode engine and the response cache like every other protocol's. Errors are plain text with
a 4xx/5xx status, never an image: QuPath ignores status codes, so a blank JPEG would pass as a
tile. Paths are served with and without their trailing slash, as extension versions differ.
"""
from __future__ import annotations

import functools
import re
import secrets
from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from tileserver.server import omero_docs, omero_params
from tileserver.server.api import thumbnail_response
from tileserver.server.http import get_slide, image_response
from tileserver.server.imaging import render
from tileserver.slides.numeric_ids import NumericIds
from tileserver.slides.registry import SlideRegistry
from tileserver.slides.tiled import TiledSlide

DEFAULT_PREFIX = "/omero"
_PREFIX = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")  # no empty, "." or ".." segment
_SHOW_IMAGE = re.compile(r"image-(\d{1,19})")


def _first(header: str | None) -> str | None:
    """The first (client-side) value of a forwarding header, or None."""
    value = (header or "").split(",")[0].strip()
    return value or None


def base_url(request: Request) -> str:
    """The mount's absolute URL as the client sees it (X-Forwarded-Proto and -Host honoured)."""
    scheme = _first(request.headers.get("x-forwarded-proto")) or request.url.scheme
    host = _first(request.headers.get("x-forwarded-host")) or request.url.netloc
    return f"{scheme}://{host}{request.scope.get('root_path', '')}"


class OmeroWeb:
    """The endpoints, over one registry's numbers."""

    def __init__(self, registry: SlideRegistry):
        self.numbers = NumericIds(registry)
        self.token = secrets.token_urlsafe(24)  # CSRF token: only ever echoed, no session

    async def _slide(self, request: Request, number: int) -> tuple[str, TiledSlide]:
        slide_id = await run_in_threadpool(self.numbers.slide_id, number)
        if slide_id is None:
            raise HTTPException(404, f"no image {number}")
        return slide_id, await get_slide(request, slide_id)

    async def api_root(self, request: Request) -> Response:
        return JSONResponse(omero_docs.api_versions(base_url(request)))

    async def api_links(self, request: Request) -> Response:
        return JSONResponse(omero_docs.api_links(base_url(request)))

    async def collection(self, request: Request) -> Response:
        if request.path_params["name"] not in omero_docs.EMPTY_COLLECTIONS:
            raise HTTPException(404, "not served: images are opened by number, not listed")
        return JSONResponse(omero_docs.empty_collection())

    async def token_doc(self, request: Request) -> Response:
        return JSONResponse({"data": self.token})

    async def servers(self, request: Request) -> Response:
        return JSONResponse(omero_docs.servers(base_url(request)))

    async def webclient(self, request: Request) -> Response:
        show = request.query_params.get("show", "")
        match = _SHOW_IMAGE.fullmatch(show)
        if match is None:
            raise HTTPException(404, "only ?show=image-N is served")
        slide_id, _ = await self._slide(request, int(match[1]))
        return HTMLResponse(f"<!doctype html><title>{escape(slide_id)}</title><p>{escape(slide_id)}: "
                            "open this URL in QuPath (File &gt; Open URI&hellip;).</p>")

    async def logout(self, request: Request) -> Response:
        return PlainTextResponse("no session to end\n")

    async def image_data(self, request: Request) -> Response:
        number = request.path_params["image"]
        slide_id, slide = await self._slide(request, number)
        return JSONResponse(omero_docs.image_data(number, slide_id, slide))

    async def thumbnail(self, request: Request) -> Response:
        _, slide = await self._slide(request, request.path_params["image"])
        return await thumbnail_response(request, slide, request.path_params["size"])

    async def region(self, request: Request) -> Response:
        _, slide = await self._slide(request, request.path_params["image"])
        if request.path_params["z"] != 0 or request.path_params["t"] != 0:
            raise HTTPException(400, "slides have one plane: z and t must be 0")
        try:
            tile = omero_params.parse_tile(request.query_params.get("tile"))
            quality = omero_params.parse_quality(request.query_params.get("q"))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        region = slide.pyramid.level_tile_region(*tile)
        if region is None:
            raise HTTPException(400, f"tile={request.query_params['tile']} is outside the image's levels")
        engine = request.app.state.engine

        async def make() -> bytes:
            pixels = await engine.region(slide, *region)
            return await engine.run_cpu(functools.partial(render, pixels, "jpg", jpeg_quality=quality))

        return await image_response(request, slide, ("omero", region, quality), "image/jpeg", make)

    def routes(self) -> list[Route]:
        both = [
            ("/webgateway/imgData/{image:int}", self.image_data),
            ("/webgateway/render_thumbnail/{image:int}/{size:int}", self.thumbnail),
            ("/webgateway/render_image_region/{image:int}/{z:int}/{t:int}", self.region),
        ]
        return [
            Route("/api/", self.api_root),
            Route("/api/v0/", self.api_links),
            Route("/api/v0/m/{name}/", self.collection),
            Route("/api/v0/token/", self.token_doc),
            Route("/api/v0/servers/", self.servers),
            Route("/webclient/", self.webclient),
            Route("/webclient/logout/", self.logout, methods=["GET", "POST"]),
            *(Route(path + slash, endpoint) for path, endpoint in both for slash in ("", "/")),
        ]


def mount(prefix: str, registry: SlideRegistry) -> Mount:
    """The OMERO-web subset at ``prefix`` ("/omero": one or more path segments, no final "/")."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"OMERO prefix {prefix!r} must be /name or /name/name..., without a final /")
    return Mount(prefix, routes=OmeroWeb(registry).routes())
