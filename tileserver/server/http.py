"""What every route shares: finding the slide (404), ETags and 304s, cached image responses.

ETags and the keys of the Redis tier come from the slide's content id (tileserver.slides.
content_id: the same on every replica, so a client revalidating through a load balancer gets its
304 from any of them) and the request (tile or region, format, IIIF quality); Redis keys also
carry the JPEG quality and the server version.
"""
from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Hashable

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from tileserver import __version__
from tileserver.server.imaging import JPEG_QUALITY
from tileserver.slides.content_id import content_id, known_content_id
from tileserver.slides.tiled import TiledSlide

CACHE_CONTROL = "public, max-age=3600"


async def get_slide(request: Request, slide_id: str) -> TiledSlide:
    """The slide for an id, or a 404 (unknown, outside the root, or not a slide)."""
    slide = await run_in_threadpool(request.app.state.registry.get, slide_id)
    if slide is None:
        raise HTTPException(404, f"no slide {slide_id!r}")
    return slide


async def content_of(slide: TiledSlide) -> str | None:
    """The slide's content id (None if its file was replaced since it was opened)."""
    known = known_content_id(slide.path, slide.identity)
    return known or await run_in_threadpool(content_id, slide.path, slide.identity)


def etag_for(content: str | None, slide: TiledSlide, key: Hashable) -> str:
    digest = hashlib.blake2b(repr((content or slide.identity, key)).encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def shared_key(content: str, key: Hashable) -> str:
    digest = hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()
    return f"tileserver:v{__version__}:q{JPEG_QUALITY}:{content}:{digest}"


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


async def image_response(request: Request, slide: TiledSlide, key: Hashable, media_type: str,
                         make: Callable[[], Awaitable[bytes]], headers: dict | None = None) -> Response:
    """An image with ETag and Cache-Control: 304 if the client has it, else from the
    response cache, else made (decoded and encoded) by ``make``."""
    content = await content_of(slide)
    etag = etag_for(content, slide, key)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, **(headers or {})}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)

    there = None if content is None else shared_key(content, key)
    body = await request.app.state.responses.get((slide.identity, key), make, there)
    return Response(body, media_type=media_type, headers=headers)
