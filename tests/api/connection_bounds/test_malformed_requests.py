"""Requests the HTTP parser refuses (headers too large, headers too slow, not HTTP at all)
get a JSON answer in the family's shape, TEI's paths included."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.raw_http import MALFORMED, openai_shape, refused
from tools.gateway_server import GatewayServer


def _long_url(path: str) -> bytes:
    """A request whose line alone is over the limit, sent in one piece (so the parser hands the
    whole URL over at once)."""
    return f"POST {path}?q={'a' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _big_header(path: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Big: ".encode() + b"a" * 70_000 + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/health/live", {"error": "the request line and headers are too large"}),
        (
            "/v1/embeddings?x=1",
            openai_shape("the request line and headers are too large", "headers_too_large"),
        ),
    ],
)
@pytest.mark.parametrize("request_of", [_big_header, _long_url], ids=["header", "url"])
def test_oversized_headers_get_431_in_the_family_shape(
    bounded_server: GatewayServer, path: str, expected: object, request_of: Callable[[str], bytes]
) -> None:
    assert refused(bounded_server, request_of(path)) == (
        b"HTTP/1.1 431 Request Header Fields Too Large",
        expected,
    )


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (b"", {"error": "the request's headers did not arrive in time"}),
        (
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n",
            openai_shape("the request's headers did not arrive in time", "request_timeout"),
        ),
    ],
)
def test_header_timeout_answers_408_in_the_family_shape(
    bounded_server: GatewayServer, sent: bytes, expected: object
) -> None:
    assert refused(bounded_server, sent, timeout=10) == (b"HTTP/1.1 408 Request Timeout", expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"POST /api/embed HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
            {"error": MALFORMED},
        ),
        (
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Content-Length: 3\r\n\r\n{}",
            openai_shape(MALFORMED, "invalid_request"),
        ),
        (
            b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            {"error": MALFORMED, "error_type": "Validation"},
        ),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Key: a\x00b\r\n\r\n", {"error": MALFORMED}),
        (  # a GET route declares this 400 too, in its family's shape (test_openapi.py)
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Key: a\x00b\r\n\r\n",
            openai_shape(MALFORMED, "invalid_request"),
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", {"error": MALFORMED}),  # TLS hello
    ],
    ids=["bad-length", "two-lengths", "bad-chunk-tei", "nul-in-header", "nul-get-openai", "tls"],
)
def test_unparseable_http_gets_a_json_400_in_the_family_shape(
    bounded_server: GatewayServer, raw: bytes, expected: object
) -> None:
    """uvicorn answers what httptools cannot parse with a text/plain 400."""
    assert refused(bounded_server, raw) == (b"HTTP/1.1 400 Bad Request", expected)
    with bounded_server.client() as client:
        assert client.get("/health/live").status_code == 200


@pytest.mark.parametrize("request_of", [_big_header, _long_url], ids=["header", "url"])
@pytest.mark.parametrize("path", ["/embed_all", "/embed", "/rerank", "/"])
def test_tei_paths_get_tei_shaped_protocol_errors(
    bounded_server: GatewayServer, path: str, request_of: Callable[[str], bytes]
) -> None:
    """On the paths TEI shares too: no body was read, and TEI's shape is Ollama's plus
    error_type."""
    assert refused(bounded_server, request_of(path)) == (
        b"HTTP/1.1 431 Request Header Fields Too Large",
        {"error": "the request line and headers are too large", "error_type": "Validation"},
    )
