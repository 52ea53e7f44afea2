"""Operations: /healthz and /metrics (Prometheus text format)."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "device": request.app.state.engine.device})


async def metrics(request: Request) -> Response:
    return Response(request.app.state.engine.stats.exposition(), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/healthz", healthz), Route("/metrics", metrics)]
