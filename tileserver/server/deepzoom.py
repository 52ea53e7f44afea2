"""DeepZoom: /deepzoom/{id}.dzi and /deepzoom/{id}_files/{level}/{col}_{row}.{jpeg|png}.

Tile size = the slide's tile size, overlap 0: every DeepZoom level down to the pyramid's last
stored level is a stored level, tile for tile (DecodeEngine.tile, no re-assembly); the smaller
DeepZoom levels below it go through the region path.
"""
from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tileserver.server.http import get_slide, image_response
from tileserver.server.imaging import media_type, render

_TILE = re.compile(r"(?P<id>.+)_files/(?P<level>\d+)/(?P<col>\d+)_(?P<row>\d+)\.(?P<ext>jpeg|jpg|png)")
DZI = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpeg" Overlap="0" TileSize="{tile}">'
    '<Size Width="{width}" Height="{height}"/></Image>'
)


async def endpoint(request: Request) -> Response:
    rest = request.path_params["rest"]
    if rest.endswith(".dzi"):
        slide = await get_slide(request, rest[: -len(".dzi")])
        p = slide.pyramid
        return Response(DZI.format(tile=p.tile_size, width=p.width, height=p.height), media_type="application/xml")
    match = _TILE.fullmatch(rest)
    if match is None:
        raise HTTPException(404, "not a DeepZoom URL: {id}.dzi or {id}_files/{level}/{col}_{row}.{jpeg|png}")
    slide = await get_slide(request, match["id"])
    dz_level, col, row, ext = int(match["level"]), int(match["col"]), int(match["row"]), match["ext"]
    region = slide.pyramid.deepzoom_tile_region(dz_level, col, row)
    if region is None:
        raise HTTPException(404, f"no DeepZoom tile {dz_level}/{col}_{row}")
    engine, level = request.app.state.engine, slide.pyramid.deepzoom_stored_level(dz_level)

    async def make() -> bytes:
        if level is not None:
            pixels = await engine.tile(slide, level, col, row)
        else:
            pixels = await engine.region(slide, *region)
        return await engine.run_cpu(render, pixels, ext)

    return await image_response(request, slide, ("dz", dz_level, col, row, ext), media_type(ext), make)


routes = [Route("/deepzoom/{rest:path}", endpoint)]
