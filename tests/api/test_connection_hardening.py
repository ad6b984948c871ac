"""The connection's other bounds: a header that never ends, bytes that start no request, a
client that never reads; Upgrade requests (h2c, WebSocket); Transfer-Encoding in HTTP/1.0.
The connection cap's answer is in test_connection_cap.py."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from tests.support.models import bundled_registry_in
from tests.support.raw_http import (
    EMBED,
    connect,
    embed_request,
    parse_answer,
    read_answer,
    read_until_close,
)
from tools.gateway_server import GatewayServer

IDLE_TIMEOUT = 2.0
WRITE_TIMEOUT = 2.0
TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8  # linux/tcp_states.h


@pytest.fixture(scope="module")
def hardened_server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = bundled_registry_in(tmp_path_factory.mktemp("hardening"))
    env = {
        "GATEWAY_HEADER_TIMEOUT": "3s",
        "GATEWAY_READ_TIMEOUT": "3s",
        "GATEWAY_IDLE_TIMEOUT": f"{IDLE_TIMEOUT}s",
        "GATEWAY_WRITE_TIMEOUT": f"{WRITE_TIMEOUT}s",
    }
    with GatewayServer(registry=registry, env=env) as running:
        yield running


def _tcp_state(sock: socket.socket) -> int:
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


# One header that never ends


def test_a_header_that_never_ends_gets_431_once_over_the_limit(
    hardened_server: GatewayServer,
) -> None:
    """httptools hands a header over only when it ends; the bytes are counted as they come."""
    with connect(hardened_server) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, piece = 0, b"a" * (1 << 16)
        try:
            while sent < 16 << 20:  # the old server took it all (then 408 at the header timeout)
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused, and closed while we were still sending
        status, headers, body = parse_answer(read_until_close(sock))
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "headers_too_large"  # /v1: OpenAI's shape
    # The limit is 64 KiB; what the sockets' buffers hold on the way is the slack.
    assert sent < 12 << 20, sent


def test_headers_under_the_limit_in_many_pieces_are_served(
    hardened_server: GatewayServer,
) -> None:
    """Counting pieces as they arrive refuses nothing the complete headers would not."""
    body = json.dumps({"model": "all-minilm", "input": "x" * 100_000}).encode()
    raw = embed_request("/api/embed", body, b"X-Pad: " + b"p" * 60_000 + b"\r\n")
    head_end = raw.index(b"\r\n\r\n") + 4
    with connect(hardened_server, timeout=60) as sock:
        for start in range(0, head_end, 4096):  # the headers in small pieces, apart
            sock.sendall(raw[start : min(start + 4096, head_end)])
            time.sleep(0.002)
        sock.sendall(raw[head_end:])
        status, _, answer = read_answer(sock)
    assert status == 200, answer[:300]


# Bytes that start no request


def test_bare_crlfs_do_not_keep_an_idle_connection_open(hardened_server: GatewayServer) -> None:
    with connect(hardened_server) as sock:
        sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(sock)[0] == 200
        sock.settimeout(0.5)
        started = time.monotonic()
        closed_after = None
        while time.monotonic() - started < IDLE_TIMEOUT + 8:  # the old server: open for ever
            try:
                sock.sendall(b"\r\n")
                assert sock.recv(65536) == b"", "an answer to bytes that are no request"
                closed_after = time.monotonic() - started
                break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "CRLFs kept the connection open past every timeout"
    # Closed at the idle timeout that began with the answer (the slack is for a busy machine).
    assert IDLE_TIMEOUT - 1.0 < closed_after < IDLE_TIMEOUT + 5, closed_after


def test_a_request_after_a_blank_line_is_still_served(hardened_server: GatewayServer) -> None:
    """RFC 9112 2.2: empty lines before a request line are ignored, not refused."""
    with connect(hardened_server) as sock:
        sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(sock)[0] == 200
        sock.sendall(b"\r\n")
        time.sleep(0.2)
        sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(sock)[0] == 200


# A client that never reads


def test_a_client_that_never_reads_is_dropped_after_the_write_timeout(
    hardened_server: GatewayServer,
) -> None:
    body = json.dumps({"model": "all-minilm", "input": ["x"] * 2048}).encode()  # ~10 MB answer
    with hardened_server.client() as client:  # computed once: the second answer is the cache's
        expected = len(client.post("/api/embed", content=body).content)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    with sock:
        sock.connect(("127.0.0.1", hardened_server.port))
        sock.sendall(embed_request("/api/embed", body))
        deadline = time.monotonic() + WRITE_TIMEOUT + 20  # the old server: held for ever
        while _tcp_state(sock) not in (TCP_CLOSE, TCP_CLOSE_WAIT):
            assert time.monotonic() < deadline, "a client that reads nothing is held"
            time.sleep(0.2)
        assert len(read_until_close(sock)) < expected  # cut off, not finished
    assert hardened_server.log().count("write timeout") == 1


# Upgrade requests


H2C = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAA\r\n"


@pytest.mark.parametrize("apart", [False, True], ids=["one-piece", "body-apart"])
def test_an_h2c_upgrade_is_ignored_and_the_request_served(
    hardened_server: GatewayServer, apart: bool
) -> None:
    """What `curl --http2 http://...` sends; the connection then serves the next request."""
    raw = embed_request("/api/embed", EMBED, H2C)
    with connect(hardened_server, timeout=30) as sock:
        if apart:
            sock.sendall(raw[: -len(EMBED)])
            time.sleep(0.2)
            sock.sendall(raw[-len(EMBED) :])
        else:
            sock.sendall(raw)
        status, _, answer = read_answer(sock)
        assert status == 200, answer
        assert len(json.loads(answer)["embeddings"][0]) == 384
        sock.sendall(b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(sock)[0] == 200


def test_many_pipelined_upgrade_requests_in_one_piece_are_all_served(
    hardened_server: GatewayServer,
) -> None:
    """Each is parsed again after the one before; none waits on the depth of a call stack."""
    count = 1500
    one = b"GET /api/version HTTP/1.1\r\nHost: x\r\n" + H2C + b"\r\n"
    with connect(hardened_server, timeout=30) as sock:
        sock.sendall(one * count)  # ~190 KB: the server reads it whole, in one or a few pieces
        with sock.makefile("rb") as answers:
            statuses = [_next_status(answers) for _ in range(count)]
    assert statuses == [200] * count


def _next_status(answers: BinaryIO) -> int:
    """The status of the next of pipelined answers (each with a Content-Length)."""
    status, length = int(answers.readline().split()[1]), 0
    while (line := answers.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    answers.read(length)
    return status


@pytest.mark.parametrize(
    ("path", "message_of"),
    [
        ("/v1/socket", lambda body: body["error"]["message"]),
        ("/api/socket", lambda body: body["error"]),
    ],
)
def test_a_websocket_upgrade_gets_a_json_answer_in_the_family_shape(
    hardened_server: GatewayServer, path: str, message_of: Callable[[Any], object]
) -> None:
    """The server serves no WebSockets: the request is answered as plain HTTP (404 here)."""
    with connect(hardened_server) as sock:
        sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            % path.encode()
        )
        status, headers, body = read_answer(sock)
    assert status == 404, body
    assert headers["content-type"] == "application/json"
    assert isinstance(message_of(json.loads(body)), str)


# Transfer-Encoding in an HTTP/1.0 request


HTTP10_CHUNKED = (
    "an HTTP/1.0 request may not carry Transfer-Encoding, whose framing HTTP/1.0 does not "
    "define: send the body with Content-Length, or the request as HTTP/1.1"
)


@pytest.mark.parametrize(
    ("path", "error_of"),
    [
        ("/api/embed", lambda body: body["error"]),
        ("/v1/embeddings", lambda body: body["error"]["message"]),
    ],
)
def test_transfer_encoding_in_http10_is_a_400_that_closes(
    hardened_server: GatewayServer, path: str, error_of: Callable[[Any], object]
) -> None:
    """RFC 9112 6.1: its framing is faulty. Read as chunked, as httptools would, a request
    smuggled after it (here a GET, an HTTP/1.0 proxy's view of the same bytes being the body)
    would be served too."""
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(EMBED), EMBED)
    raw = (
        b"POST %s HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%s"
        b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n" % (path.encode(), chunked)
    )
    with connect(hardened_server, timeout=30) as sock:
        sock.sendall(raw)
        status, headers, body = parse_answer(read_until_close(sock))  # one answer, then EOF
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert error_of(json.loads(body)) == HTTP10_CHUNKED
    # With Content-Length, HTTP/1.0 is served.
    with connect(hardened_server, timeout=30) as sock:
        sock.sendall(embed_request(path, EMBED).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        assert parse_answer(read_until_close(sock))[0] == 200
