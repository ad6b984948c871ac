"""The answers the connection itself writes (gateway/connections.py), below Litestar: JSON in the
path's API family's error shape, as every other error, instead of uvicorn's text/plain ones."""

from __future__ import annotations

from typing import Any

from gateway.api.errors import protocol_error_body
from gateway.api.responses import send_json

# Status: (reason phrase, what the client is told, error code).
_REFUSALS = {
    400: (
        b"Bad Request",
        "the request is not valid HTTP/1.1 (its framing, request line or a header could not be "
        "parsed)",
        "invalid_request",
    ),
    408: (
        b"Request Timeout",
        "the request's headers did not arrive in time",
        "request_timeout",
    ),
    431: (
        b"Request Header Fields Too Large",
        "the request line and headers are too large",
        "headers_too_large",
    ),
}


def refusal(status: int, path: str) -> bytes:
    """A whole response refusing a request that never reached the app; the connection closes."""
    reason, message, code = _REFUSALS[status]
    body = protocol_error_body(path, status, message, code)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(body), body)
    )


OVER_CAPACITY = "the server has too many open connections; retry shortly"


async def over_capacity(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app uvicorn runs instead of ours beyond `limit_concurrency` (its own answers
    text/plain without Retry-After). Closing gives a connection back."""
    body = protocol_error_body(
        scope["path"], 503, OVER_CAPACITY, "server_busy", tei_error_type="Overloaded"
    )
    await send_json(send, 503, body, {"Retry-After": "1", "Connection": "close"})
