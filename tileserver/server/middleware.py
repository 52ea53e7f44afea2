"""The outermost ASGI layer: CORS header, request latency metrics, and cancelling the handler
of a GET whose client disconnects (so its queued decodes are dropped by the engine)."""
from __future__ import annotations

import asyncio
import contextlib
import time

from tileserver.engine.stats import EngineStats


def route_label(path: str) -> str:
    """A bounded label: the first path segment (and the IIIF version)."""
    parts = path.strip("/").split("/")
    if parts[0] == "iiif" and len(parts) > 1 and parts[1] in ("2", "3"):
        return f"iiif{parts[1]}"
    known = ("api", "deepzoom", "healthz", "metrics", "static", "view", "omero")
    return parts[0] if parts[0] in known else ("root" if parts == [""] else "other")


class ServerMiddleware:
    def __init__(self, app, stats: EngineStats):
        self.app = app
        self.stats = stats

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        state = {"status": 500, "complete": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"access-control-allow-origin", b"*")]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True
            await send(message)

        try:
            if scope["method"] in ("GET", "HEAD"):
                await self._cancellable(scope, receive, send_wrapper, state)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            label = route_label(scope["path"])
            self.stats.requests.labels(label, str(state["status"])).observe(time.perf_counter() - started)

    async def _cancellable(self, scope, receive, send, state):
        first = await receive()  # a GET's one (empty) body message
        if first["type"] == "http.disconnect":
            state["status"] = 499  # client closed request
            return
        if first.get("more_body"):  # a GET with a streamed body: pass it through, unwatched
            replay = iter([first])
            return await self.app(scope, lambda: _next_or(replay, receive), send)
        left = asyncio.Event()

        async def app_receive():
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            await left.wait()
            return {"type": "http.disconnect"}

        async def watch():
            await receive()  # http.disconnect: the client left, or the response is complete
            left.set()

        handler = asyncio.ensure_future(self.app(scope, app_receive, send))
        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not handler.done() and not state["complete"]:
                handler.cancel()
                state["status"] = 499
                with contextlib.suppress(asyncio.CancelledError):
                    await handler
                return
            await handler
        finally:
            watcher.cancel()
            handler.cancel()


async def _next_or(replay, receive):
    """The replayed message first, then the real ones."""
    message = next(replay, None)
    return message if message is not None else await receive()
