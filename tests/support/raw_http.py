"""HTTP/1.1 over a raw socket, for the tests of what the connection layer answers
(tests/api/test_connection_hardening.py, test_connection_cap.py, connection_bounds/):
requests as bytes, answers read back, and the answers expected to bytes that are not a
request."""

from __future__ import annotations

import json
import socket

from tools.gateway_server import GatewayServer

# The header timeout of tests/api/connection_bounds/'s server.
HEADER_TIMEOUT = 3.0
# A body every embedding route takes.
EMBED = json.dumps({"model": "all-minilm", "input": "hello"}).encode()
# The gateway's answer to bytes its HTTP parser cannot read as a request.
MALFORMED = (
    "the request is not valid HTTP/1.1 (its framing, request line or a header could not be parsed)"
)


def connect(server: GatewayServer, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_until_close(sock: socket.socket) -> bytes:
    """What arrived before the server's EOF or reset (a reset may follow an answer)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One answer with a Content-Length, leaving the connection open for the next."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    return parse_answer(data, sock)


def parse_answer(
    data: bytes, sock: socket.socket | None = None
) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    while sock is not None and len(body) < length:
        body += sock.recv(65536)
    assert len(body) == length, (status, body[:200])
    return int(status.split()[1]), headers, body


def embed_request(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), extra, len(body), body)
    )


def answer_before_close(sock: socket.socket) -> tuple[bytes, dict[str, str], object]:
    """Status line, headers and JSON body of the one answer before the server closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert int(headers["content-length"]) == len(body)
    return status.encode(), headers, json.loads(body)


def refused(server: GatewayServer, sent: bytes, timeout: float = 5) -> tuple[bytes, object]:
    """Status line and JSON body of the connection's own answer to `sent`."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(sent)
        status, headers, body = answer_before_close(sock)
    assert headers["content-type"] == "application/json"
    return status, body


def openai_shape(message: str, code: str) -> dict[str, object]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
