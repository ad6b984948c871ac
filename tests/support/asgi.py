"""ASGI scopes for tests that call the app's layers without a server."""

from __future__ import annotations

from typing import Any


def post_scope(path: str, body: bytes) -> dict[str, Any]:
    """An HTTP POST of a JSON `body` to `path` from a loopback client, as uvicorn builds it."""
    return {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("127.0.0.1", 11434),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
