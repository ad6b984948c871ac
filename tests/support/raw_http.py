"""HTTP/1.1 over a raw socket, for the tests of what the connection layer answers
(tests/api/test_connection_hardening.py, test_connection_cap.py): requests as bytes and
answers read back."""

from __future__ import annotations

import json
import socket

from tools.gateway_server import GatewayServer

# A body every embedding route takes.
EMBED = json.dumps({"model": "all-minilm", "input": "hello"}).encode()


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
