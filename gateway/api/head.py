"""HEAD wherever GET works (RFC 9110 section 9.3.2): uptime monitors and `curl -I` probe with HEAD.

Litestar routes HEAD only to handlers declared for it (Ollama's `/`, `/api/version` and
`/api/tags` have their own). A HEAD that the router refuses with 405 is answered again as the GET
of the same path, with the GET's status and headers (Content-Length included) and no body; a path
with no GET keeps its 405 and that answer's Allow header.
"""

from __future__ import annotations

from typing import Any

from gateway.api.observe import ASGIApp, Message, Receive, Scope, Send

NO_BODY: Message = {"type": "http.request", "body": b"", "more_body": False}


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        refused = False

        async def unless_refused(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 405:
                refused = True
            if not refused:
                await send(message)

        await self.app(scope, receive, unless_refused)
        if not refused:
            return
        replayed = False

        async def receive_again() -> Message:
            # The first pass may have read the (empty) HEAD body: hand it over once more.
            nonlocal replayed
            if not replayed:
                replayed = True
                return NO_BODY
            return await receive()

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive_again, headers_only)


def with_head_as_get(app: Any) -> None:
    """Wrap `app`'s ASGI entry point (a Litestar app) so HEAD works wherever GET does."""
    app.asgi_handler = HeadAsGet(app.asgi_handler)
