"""IIIF Image API 3.0 (/iiif/3/...) and 2.1 (/iiif/2/...).

The identifier is one path segment of the raw (still percent-encoded) path, so an id with a
slash must come as %2F and an unescaped slash never matches (404). The image pipeline is the
shared one: region in level-0 pixels + output size -> DecodeEngine.region -> render.
"""
from __future__ import annotations

import json
from urllib.parse import quote, unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tileserver.server import iiif_params
from tileserver.server.http import get_slide, image_response
from tileserver.server.iiif_info import CONTEXT, PROFILE_LINK, info_v2, info_v3
from tileserver.server.imaging import media_type, render

VERSIONS = (2, 3)


def _segments(request: Request, version: int) -> tuple[str, list[str]]:
    """The raw path's segments after /iiif/{version}/, each percent-decoded on its own."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    rest = raw.split(b"?", 1)[0][len(f"/iiif/{version}/"):]
    identifier, *parts = (unquote_to_bytes(segment).decode("utf-8", "replace") for segment in rest.split(b"/"))
    return identifier, parts


def _service_id(request: Request, version: int, identifier: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/iiif/{version}/{quote(identifier, safe='')}"


async def endpoint(request: Request) -> Response:
    version = request.path_params["version"]
    if version not in VERSIONS:
        raise HTTPException(404, f"IIIF Image API version {version} is not served (2 or 3)")
    identifier, parts = _segments(request, version)
    if not identifier:
        raise HTTPException(404, "no identifier")
    if not parts:
        await get_slide(request, identifier)  # 404 for an unknown id, before redirecting
        return RedirectResponse(_service_id(request, version, identifier) + "/info.json", status_code=303)
    if parts == ["info.json"]:
        return await _info(request, version, identifier)
    if len(parts) == 4:
        return await _image(request, version, identifier, parts)
    raise HTTPException(404, "not a IIIF Image API URL: {id}/info.json or {id}/region/size/rotation/quality.format")


async def _info(request: Request, version: int, identifier: str) -> Response:
    slide = await get_slide(request, identifier)
    build = info_v3 if version == 3 else info_v2
    doc = build(slide, _service_id(request, version, identifier))
    if "application/ld+json" in request.headers.get("accept", ""):
        content_type = f'application/ld+json;profile="{CONTEXT[version]}"'
    else:
        content_type = "application/json"
    return Response(json.dumps(doc), headers={"Content-Type": content_type, "Link": _profile_link(version)})


def _profile_link(version: int) -> str:
    return f'<{PROFILE_LINK[version]}>;rel="profile"'


async def _image(request: Request, version: int, identifier: str, parts: list[str]) -> Response:
    slide = await get_slide(request, identifier)
    try:
        params = iiif_params.parse(*parts, slide.pyramid.width, slide.pyramid.height, version)
    except iiif_params.IIIFError as exc:
        raise HTTPException(400, str(exc)) from None
    engine = request.app.state.engine

    async def make() -> bytes:
        pixels = await engine.region(slide, *params.region, *params.size)
        return await engine.run_cpu(
            render, pixels, params.extension, params.rotation, params.mirror, params.quality, slide.background
        )

    return await image_response(
        request, slide, ("iiif", params), media_type(params.extension), make,
        headers={"Link": _profile_link(version)},
    )


routes = [Route("/iiif/{version:int}/{rest:path}", endpoint)]
