"""Per-request observation: the X-Request-ID, request metrics, the access log, GET /metrics.

`RequestObserver` wraps the whole application (outside routing, so 404s and CORS preflights
are counted and carry an ID too).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from litestar import Response, Router, get

from gateway import metrics
from gateway.api.auth import PUBLIC
from gateway.logs import loggable
from gateway.manager import ModelManager
from gateway.request_context import begin, end

# Plain ASGI shapes: Litestar's TypedDicts would need a cast at every key this reads.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("gateway.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's ID is echoed into headers and logs: only short, printable, unambiguous values.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:/\-]{1,128}")


def accepted_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _ACCEPTED_ID.fullmatch(text) else None
    return None


def access_level(status: int) -> int:
    """5xx (the server failed or refused: a failed run, overload, a drain) is a WARNING an
    operator's alerts may watch; 4xx are the clients' mistakes (and 499 their leaving): INFO."""
    return logging.WARNING if status >= 500 else logging.INFO


class RequestObserver:
    """ASGI middleware: opens the request context, echoes its ID, records metrics."""

    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # uuid4().hex's 32 hex digits at a fifth of its cost (no UUID object per request).
        request_id = accepted_request_id(scope) or os.urandom(16).hex()
        context, token = begin(request_id)
        status = 500  # what the client sees if the app fails before it answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            path: str = scope["path"]
            route = metrics.route_family(path, scope["method"])
            metrics.request_done(route, context.model, status, seconds)
            if self.access_log:
                log.log(
                    access_level(status),
                    "%s %s %d %.1fms model=%s",
                    scope["method"],
                    loggable(path),  # decoded by uvicorn: "%0a" is a newline here
                    status,
                    seconds * 1000,
                    context.model or "-",
                )
            end(token)


def refresher(manager: ModelManager) -> Callable[[], None]:
    """What a scrape updates first: this process's state that changes without an event
    (arenas grow while serving; a GPU budget follows NVML)."""

    def refresh() -> None:
        metrics.memory_budget(manager.device, manager.budget())
        for model in manager.loaded():
            metrics.model_memory(model.spec.name, model.device, model.memory_bytes)

    return refresh


def metrics_router(refresh: Callable[[], None], *, public: bool) -> Router:
    """GET /metrics; open without a key only when the operator says so (else the guard asks
    for the metrics or admin scope: gateway.auth.guard.required_scope)."""

    @get("/metrics", opt=PUBLIC if public else {}, include_in_schema=False,
         sync_to_thread=False)  # fmt: skip
    def prometheus_metrics() -> Response[bytes]:
        refresh()
        # The header itself: prometheus-client's value already names the charset, and a
        # text/* media_type gets Litestar's "; charset=utf-8" appended a second time.
        return Response(
            metrics.render(),
            media_type=metrics.CONTENT_TYPE_LATEST,
            headers={"content-type": metrics.CONTENT_TYPE_LATEST},
        )

    return Router(path="/", route_handlers=[prometheus_metrics])


def observed(app: Any, *, access_log: bool) -> None:
    """Wrap `app`'s ASGI entry point (a Litestar app) in the observer."""
    app.asgi_handler = RequestObserver(app.asgi_handler, access_log=access_log)
