"""The answers the connection itself writes (gateway/connections.py), below Litestar: JSON in the
path's API family's error shape, as every other error, instead of uvicorn's text/plain ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.api.errors import protocol_error_body
from gateway.api.responses import send_json


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: bytes  # the status line's phrase
    message: str  # what the client is told
    code: str


MALFORMED = Refusal(
    400,
    b"Bad Request",
    "the request is not valid HTTP/1.1 (its framing, request line or a header could not be parsed)",
    "invalid_request",
)
HEADER_TIMEOUT = Refusal(
    408, b"Request Timeout", "the request's headers did not arrive in time", "request_timeout"
)
HEADERS_TOO_LARGE = Refusal(
    431,
    b"Request Header Fields Too Large",
    "the request line and headers are too large",
    "headers_too_large",
)


# The methods some route takes (HEAD wherever GET is, OPTIONS for CORS preflights); any other
# the parser knows (PUT, TRACE, PROPFIND, ...) is the router's 405 with Allow.
IMPLEMENTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "OPTIONS")


def unknown_method(method: str) -> Refusal:
    """A method the parser does not know at all: 501, as RFC 9110 9.1 asks, not a 400."""
    return Refusal(
        501,
        b"Not Implemented",
        f"unknown request method {method[:20]!r}: this server implements "
        f"{', '.join(IMPLEMENTED_METHODS[:-1])} and {IMPLEMENTED_METHODS[-1]}",
        "method_not_implemented",
    )


def transfer_codings(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The transfer codings that every Transfer-Encoding header names, in order, lower case,
    without parameters (`headers`: lower-case names, as uvicorn keeps them)."""
    values = (value.decode("latin-1") for name, value in headers if name == b"transfer-encoding")
    named = (
        coding.split(";")[0].strip().lower() for value in values for coding in value.split(",")
    )
    return [coding for coding in named if coding]


TRANSFER_ENCODING_IN_HTTP10 = Refusal(
    400,
    b"Bad Request",
    "an HTTP/1.0 request may not carry Transfer-Encoding, whose framing HTTP/1.0 does not "
    "define: send the body with Content-Length, or the request as HTTP/1.1",
    "invalid_request",
)


def faulty_framing(version: str, headers: list[tuple[bytes, bytes]]) -> Refusal | None:
    """The 400 for Transfer-Encoding in a request older than HTTP/1.1 (`version` as httptools
    says it, "1.0"): RFC 9112 6.1 has the server treat its framing as faulty and close the
    connection, since an HTTP/1.0 intermediary may have forwarded the body without reading it
    as chunked (request smuggling)."""
    major, _, minor = version.partition(".")
    if (major, minor) >= ("1", "1") or not any(n == b"transfer-encoding" for n, _ in headers):
        return None
    return TRANSFER_ENCODING_IN_HTTP10


def unsupported_transfer_coding(codings: list[str]) -> Refusal | None:
    """The 501 for a body framed by chunked but also in a coding the server does not undo (RFC
    9112 6.1): read as plain chunked, a gzip body would reach the JSON decoder compressed. When
    chunked is not the last coding the parser answers 400 itself, as RFC 9112 6.3 requires."""
    others = [coding for coding in codings if coding != "chunked"]
    if not others or not codings or codings[-1] != "chunked":
        return None
    return Refusal(
        501,
        b"Not Implemented",
        f"Transfer-Encoding {others[0][:40]!r} is not supported, only chunked: send the request "
        "body uncompressed, with Content-Length or Transfer-Encoding: chunked",
        "unsupported_transfer_encoding",
    )


def refusal(answer: Refusal, path: str) -> bytes:
    """A whole response refusing a request that never reached the app; the connection closes."""
    body = protocol_error_body(path, answer.status, answer.message, answer.code)
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s"
        % (answer.status, answer.reason, len(body), body)
    )


OVER_CAPACITY = "the server has too many open connections; retry shortly"


async def over_capacity(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app uvicorn runs instead of ours beyond `limit_concurrency` (its own answers
    text/plain without Retry-After). Closing gives a connection back."""
    body = protocol_error_body(
        scope["path"], 503, OVER_CAPACITY, "server_busy", tei_error_type="Overloaded"
    )
    await send_json(send, 503, body, {"Retry-After": "1", "Connection": "close"})
