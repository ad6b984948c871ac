"""The connection cap (GATEWAY_MAX_CONNECTIONS): uvicorn's refusal made a JSON 503 with
Retry-After in the family's shape, logged once per window."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.models import bundled_registry_in
from tests.support.raw_http import EMBED, connect, embed_request, parse_answer, read_until_close
from tools.gateway_server import GatewayServer


@pytest.fixture(scope="module")
def capped_server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = bundled_registry_in(tmp_path_factory.mktemp("capped"))
    with GatewayServer(registry=registry, env={"GATEWAY_MAX_CONNECTIONS": "2"}) as running:
        yield running


BUSY = "the server has too many open connections; retry shortly"


@pytest.mark.parametrize(
    ("path", "message_of"),
    [
        ("/v1/embeddings", lambda body: (body["error"]["message"], body["error"]["code"])),
        ("/api/embed", lambda body: (body.pop("error"), body)),
        ("/embed", lambda body: (body["error"], body["error_type"])),
    ],
)
def test_over_the_connection_cap_the_503_is_json_with_retry_after(
    capped_server: GatewayServer, path: str, message_of: Callable[[dict[str, Any]], object]
) -> None:
    """uvicorn answers it, below the app: 503 text/plain without Retry-After."""
    held = [connect(capped_server) for _ in range(2)]
    try:
        time.sleep(0.2)
        with connect(capped_server) as sock:
            sock.sendall(embed_request(path, EMBED))
            status, headers, body = parse_answer(read_until_close(sock))
    finally:
        for sock in held:
            sock.close()
    assert (status, headers["content-type"], headers["retry-after"]) == (
        503,
        "application/json",
        "1",
    )
    family_detail = {"/v1/embeddings": "server_busy", "/api/embed": {}, "/embed": "Overloaded"}
    assert message_of(json.loads(body)) == (BUSY, family_detail[path])


def test_refusals_at_the_cap_are_logged_once_per_window(capped_server: GatewayServer) -> None:
    """uvicorn warns once per refused request; a burst of refusals is one line, and the next
    line after the window counts the held ones (gateway.logs.RepeatThrottle)."""
    line = "Exceeded concurrency limit."
    before = capped_server.log().count(line)
    held = [connect(capped_server) for _ in range(2)]
    try:
        time.sleep(0.2)
        for _ in range(12):
            with connect(capped_server) as sock:
                sock.sendall(embed_request("/api/embed", EMBED))
                status, _, _ = parse_answer(read_until_close(sock))
                assert status == 503
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert capped_server.log().count(line) - before <= 1
