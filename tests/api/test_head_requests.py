"""HEAD wherever GET works (RFC 9110 9.3.2), on the real server: uptime monitors and `curl -I`
probe with HEAD, and the routes without a HEAD handler of their own answered it with 405."""

from __future__ import annotations

import pytest

from tools.gateway_server import GatewayServer

GET_ROUTES = ["/health", "/health/live", "/v1/models", "/api/ps", "/api/tags", "/api/version", "/"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_as_get_without_the_body(server: GatewayServer, path: str) -> None:
    with server.client() as client:
        got = client.get(path)
        head = client.head(path)
    assert got.status_code == 200 and got.content
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["x-request-id"] != got.headers["x-request-id"]  # each its own request


def test_head_where_there_is_no_get_is_still_refused(server: GatewayServer) -> None:
    with server.client() as client:
        head = client.head("/api/embed")
        missing = client.head("/no/such/route")
        after = client.post("/api/embed", json={"model": "all-minilm", "input": "still healthy"})
    assert head.status_code == 405
    assert set(head.headers["allow"].split(", ")) == {"POST", "OPTIONS"}
    assert missing.status_code == 404
    assert after.status_code == 200
