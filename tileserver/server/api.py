"""JSON API: /api/slides, /api/slides/{id}, /api/slides/{id}/thumbnail and, for slides written by
the adaptive codec, /api/slides/{id}/decisions.png (the decision heatmap, one block per tile)."""
from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tileserver.server.http import get_slide, image_response
from tileserver.server.imaging import render
from tileserver.server.omero_docs import qupath_path
from tileserver.slides.numeric_ids import numeric_id
from tileserver.slides.tiled import TiledSlide
from tileserver.sr.heatmap import heatmap_png

THUMBNAIL_DEFAULT, THUMBNAIL_MAX = 256, 1024


def _entry(slide_id: str, slide: TiledSlide, omero_prefix: str) -> dict:
    escaped = quote(slide_id, safe="")
    return {
        "id": slide_id,
        "omero_id": numeric_id(slide_id),
        **slide.describe(),
        "urls": {
            "deepzoom": f"/deepzoom/{quote(slide_id)}.dzi",
            "iiif3": f"/iiif/3/{escaped}/info.json",
            "iiif2": f"/iiif/2/{escaped}/info.json",
            "thumbnail": f"/api/slides/{quote(slide_id)}/thumbnail",
            "qupath": qupath_path(omero_prefix, slide_id),
            **({"decisions": f"/api/slides/{quote(slide_id)}/decisions.png"} if slide.has_decisions else {}),
        },
    }


def _list(registry, omero_prefix: str) -> list[dict]:
    entries = []
    for slide_id in registry.ids():
        slide = registry.get(slide_id)
        if slide is not None:
            entries.append(_entry(slide_id, slide, omero_prefix))
    return entries


async def slides(request: Request) -> Response:
    state = request.app.state
    return JSONResponse({"slides": await run_in_threadpool(_list, state.registry, state.omero_prefix)})


async def slide(request: Request) -> Response:
    slide_id = request.path_params["id"]
    return JSONResponse(_entry(slide_id, await get_slide(request, slide_id), request.app.state.omero_prefix))


async def thumbnail(request: Request) -> Response:
    slide = await get_slide(request, request.path_params["id"])
    try:
        side = int(request.query_params.get("size", THUMBNAIL_DEFAULT))
    except ValueError:
        raise HTTPException(400, "size must be a whole number of pixels") from None
    return await thumbnail_response(request, slide, side)


async def thumbnail_response(request: Request, slide: TiledSlide, side: int) -> Response:
    """A JPEG of the whole slide, its longer side ``side`` pixels (never upscaled)."""
    if not 1 <= side <= THUMBNAIL_MAX:
        raise HTTPException(400, f"size must be 1 to {THUMBNAIL_MAX}")
    p = slide.pyramid
    scale = min(side / p.width, side / p.height, 1.0)
    out = (max(1, round(p.width * scale)), max(1, round(p.height * scale)))
    engine = request.app.state.engine

    async def make() -> bytes:
        pixels = await engine.region(slide, 0, 0, p.width, p.height, *out)
        return await engine.run_cpu(render, pixels, "jpg")

    return await image_response(request, slide, ("thumbnail", out), "image/jpeg", make)


async def decisions(request: Request) -> Response:
    """The decision heatmap PNG (red keep, blue compress, transparent glass); 404 without one."""
    slide_id = request.path_params["id"]
    slide = await get_slide(request, slide_id)
    if not slide.has_decisions:
        raise HTTPException(404, f"slide {slide_id!r} has no decisions page (not encoded with --codec adaptive)")

    async def make() -> bytes:
        return await run_in_threadpool(lambda: heatmap_png(slide.decisions()))

    return await image_response(request, slide, ("decisions",), "image/png", make)


routes = [
    Route("/api/slides", slides),
    Route("/api/slides/{id:path}/thumbnail", thumbnail),
    Route("/api/slides/{id:path}/decisions.png", decisions),
    Route("/api/slides/{id:path}", slide),
]
