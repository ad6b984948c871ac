"""Transfer codings besides chunked (501, or 400 when chunked is not last) and request
methods the server does not implement (501) or a route does not take (405)."""

from __future__ import annotations

import gzip
import json
import socket

import pytest

from tests.support.raw_http import MALFORMED, answer_before_close, refused
from tools.gateway_server import GatewayServer


def _chunked(path: str, transfer_encoding: bytes, payload: bytes) -> bytes:
    """A POST whose body is `payload` in one chunk, framed as `transfer_encoding` says."""
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (path.encode(), transfer_encoding, len(payload), payload)
    )


NOT_CHUNKED_ONLY = (
    "Transfer-Encoding 'gzip' is not supported, only chunked: send the request body "
    "uncompressed, with Content-Length or Transfer-Encoding: chunked"
)


@pytest.mark.parametrize(
    ("path", "header", "expected"),
    [
        ("/api/embed", b"Transfer-Encoding: gzip, chunked\r\n", {"error": NOT_CHUNKED_ONLY}),
        (
            "/v1/embeddings",
            b"Transfer-Encoding: GZIP;q=1 ,chunked\r\n",
            {
                "error": {
                    "message": NOT_CHUNKED_ONLY,
                    "type": "server_error",
                    "param": None,
                    "code": "unsupported_transfer_encoding",
                }
            },
        ),
        (  # two headers make one list (RFC 9110 5.3)
            "/embed",
            b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            {"error": NOT_CHUNKED_ONLY, "error_type": "Validation"},
        ),
    ],
    ids=["ollama", "openai-case-and-parameters", "tei-two-headers"],
)
def test_a_transfer_coding_besides_chunked_gets_501(
    bounded_server: GatewayServer, path: str, header: bytes, expected: object
) -> None:
    """httptools undid the chunked framing only: the gzip bytes reached the JSON decoder, a
    400 about invalid JSON for a body the client had sent correctly."""
    payload = gzip.compress(json.dumps({"model": "all-minilm", "input": "hi"}).encode())
    sent = _chunked(path, header, payload)
    assert refused(bounded_server, sent) == (b"HTTP/1.1 501 Not Implemented", expected)


def test_chunked_alone_is_served_and_a_last_coding_besides_it_stays_400(
    bounded_server: GatewayServer,
) -> None:
    body = json.dumps({"model": "all-minilm", "input": "hi"}).encode()
    with socket.create_connection(("127.0.0.1", bounded_server.port), timeout=30) as sock:
        sock.sendall(_chunked("/api/embed", b"Transfer-Encoding: Chunked\r\n", body))
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    # Not chunked last: the body's length cannot be known, a 400 (RFC 9112 6.3), not a 501.
    sent = _chunked("/api/embed", b"Transfer-Encoding: chunked, gzip\r\n", body)
    assert refused(bounded_server, sent) == (b"HTTP/1.1 400 Bad Request", {"error": MALFORMED})


UNKNOWN_METHOD = (
    "unknown request method 'BREW': this server implements GET, HEAD, POST, DELETE and OPTIONS"
)
OPENAI_UNKNOWN_METHOD = {
    "error": {
        "message": UNKNOWN_METHOD,
        "type": "server_error",
        "param": None,
        "code": "method_not_implemented",
    }
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"BREW /api/embed HTTP/1.1\r\nHost: x\r\n\r\n", {"error": UNKNOWN_METHOD}),
        (
            b"BREW /v1/embeddings?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            OPENAI_UNKNOWN_METHOD,
        ),
        (
            b"\r\nBREW /tokenize HTTP/1.0\r\n\r\n",
            {"error": UNKNOWN_METHOD, "error_type": "Validation"},
        ),
        (  # methods are case-sensitive (RFC 9110 9.1): `get` is not GET
            b"get /health HTTP/1.1\r\nHost: x\r\n\r\n",
            {"error": UNKNOWN_METHOD.replace("'BREW'", "'get'")},
        ),
    ],
    ids=["ollama", "openai", "tei", "lower-case"],
)
def test_an_unknown_method_gets_501_in_the_family_shape(
    bounded_server: GatewayServer, raw: bytes, expected: object
) -> None:
    """httptools refuses a method it does not know, which uvicorn answered 400 as if the
    request were not HTTP."""
    assert refused(bounded_server, raw) == (b"HTTP/1.1 501 Not Implemented", expected)


def test_an_unknown_method_after_a_request_on_the_same_connection_is_501(
    bounded_server: GatewayServer,
) -> None:
    """The method is judged on the new request line, and its path picks the family."""
    with socket.create_connection(("127.0.0.1", bounded_server.port), timeout=10) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the JSON answer, whole, before the next request
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first
        sock.sendall(b"BREW /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = answer_before_close(sock)
    assert (status, body) == (b"HTTP/1.1 501 Not Implemented", OPENAI_UNKNOWN_METHOD)


def test_a_known_method_a_route_does_not_take_stays_405_with_allow(
    bounded_server: GatewayServer,
) -> None:
    """PROPFIND is a method the parser knows (WebDAV's): the route says which it takes."""
    with socket.create_connection(("127.0.0.1", bounded_server.port), timeout=10) as sock:
        sock.sendall(b"PROPFIND /api/embed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = answer_before_close(sock)
    assert status == b"HTTP/1.1 405 Method Not Allowed", body
    assert {m.strip() for m in headers["allow"].split(",")} >= {"POST", "OPTIONS"}
    assert body == {"error": "405 method not allowed"}
