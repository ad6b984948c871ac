"""Run an ASGI app in-process on a request that arrived elsewhere.

On Ray Serve the HTTP request reaches the ingress replica, and the gateway's own app (the same
Litestar app `gateway serve` runs) lives in the model replicas. The ingress ships the request as
a ForwardedRequest; the model replica feeds it to the app here and ships the ForwardedResponse
back. Lifespan drives the app's start-up and shut-down (preload, releasing models) as a server
would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: frameworks type their scopes and events more narrowly than this driver.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


@dataclass(frozen=True)
class ForwardedRequest:
    """An HTTP request with its body read, small enough to pass between Ray actors."""

    method: str
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    client: tuple[str, int] | None = None
    scheme: str = "http"
    http_version: str = "1.1"

    def header(self, name: bytes) -> bytes | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


@dataclass
class ForwardedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class AppFailed(RuntimeError):
    """The app ended without sending a complete response, or its lifespan failed."""


async def call_app(app: ASGIApp, request: ForwardedRequest) -> ForwardedResponse:
    """One HTTP request through `app`; the answer once its body is complete."""
    scope: Scope = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.query_string,
        "headers": request.headers,
        "client": request.client,
        "server": None,
        "state": {},
    }
    complete = asyncio.Event()
    body_sent = False
    start: Message | None = None
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        # The client stays connected until the response is complete: apps that watch for a
        # disconnect (the gateway does, for slow requests) must not see one early.
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                complete.set()

    try:
        await app(scope, receive, send)
    finally:
        complete.set()
    if start is None:
        raise AppFailed(f"{request.method} {request.path}: the app sent no response")
    return ForwardedResponse(
        status=int(start["status"]),
        headers=[(bytes(k), bytes(v)) for k, v in start.get("headers", [])],
        body=b"".join(chunks),
    )


class Lifespan:
    """Start an app's lifespan (`await start()`) and end it (`await stop()`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": {}}

        async def run() -> None:
            await self.app(scope, self._inbox.get, self._outbox.put)

        self._task = asyncio.get_running_loop().create_task(run())
        await self._step("lifespan.startup")

    async def stop(self) -> None:
        if self._task is None:
            return
        try:
            await self._step("lifespan.shutdown")
            await self._task
        finally:
            self._task = None

    async def _step(self, event: str) -> None:
        await self._inbox.put({"type": event})
        assert self._task is not None
        answer = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({answer, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            error = self._task.exception()
            raise AppFailed(f"{event}: the app's lifespan ended: {error!r}")
        message = answer.result()
        if message["type"] != f"{event}.complete":
            raise AppFailed(f"{event}: {message.get('message') or message['type']}")
