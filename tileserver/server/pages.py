"""HTML pages: ``/`` (the slide list) and ``/view/{id}`` (the OpenSeadragon viewer).

The pages are shells: their scripts (static/list.js, static/viewer.js) fetch everything they
show from the JSON API (/api/slides, /api/slides/{id}). The viewer page only checks that the
slide exists, so an unknown id is a 404 page rather than an empty viewer.
"""
from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tileserver.server.http import get_slide

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/style.css">
</head>
<body class="{kind}">
<header><a class="home" href="/">tileserver</a><span class="title">{heading}</span></header>
{body}
{scripts}
</body>
</html>
"""

_LIST_BODY = """<main>
<table id="slides">
<thead><tr><th></th><th>slide</th><th>size (px)</th><th>levels</th><th>µm/px</th>
<th>codec mix</th><th>bytes</th><th>ratio vs raw RGB</th><th>ratio vs JPEG q90</th></tr></thead>
<tbody></tbody>
</table>
<p id="status">loading slides…</p>
</main>"""

_VIEW_BODY = """<main id="view" data-slide-id="{slide_id}">
<div id="viewer"></div>
<aside id="panel">
<dl id="facts"></dl>
<div id="heatmap" hidden>
<label><input id="heatmap-toggle" type="checkbox"> decision heatmap</label>
<p class="legend"><span class="swatch keep"></span>keep <span class="swatch compress"></span>compressed (SR4)</p>
</div>
<label for="iiif-url">IIIF Image API 3.0</label>
<div class="copy"><input id="iiif-url" readonly><button id="copy-iiif" type="button">copy</button></div>
<label for="iiif2-url">IIIF Image API 2.1</label>
<div class="copy"><input id="iiif2-url" readonly><button id="copy-iiif2" type="button">copy</button></div>
<label for="qupath-url">Open in QuPath (OMERO extension: File &gt; Open URI&hellip;)</label>
<div class="copy"><input id="qupath-url" readonly><button id="copy-qupath" type="button">copy</button></div>
<p id="status">loading…</p>
</aside>
</main>"""


def _script_tags(*names: str) -> str:
    return "\n".join(f'<script src="/static/{name}"></script>' for name in names)


def _page(title: str, heading: str, kind: str, body: str, scripts: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), heading=escape(heading), kind=kind,
                                     body=body, scripts=scripts))


async def slide_list(request: Request) -> HTMLResponse:
    return _page("tileserver: slides", "slides", "list", _LIST_BODY, _script_tags("format.js", "list.js"))


async def viewer(request: Request) -> HTMLResponse:
    slide_id = request.path_params["id"]
    await get_slide(request, slide_id)  # 404 for an unknown id
    body = _VIEW_BODY.format(slide_id=escape(slide_id, quote=True))
    scripts = _script_tags("vendor/openseadragon/openseadragon.min.js", "format.js", "scalebar.js", "viewer.js")
    return _page(f"tileserver: {slide_id}", slide_id, "view", body, scripts)


routes = [
    Route("/", slide_list),
    Route("/view/{id:path}", viewer),
]
