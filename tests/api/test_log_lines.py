"""A client cannot write lines of its own into the server's text log."""

from __future__ import annotations

from pathlib import Path

from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer

KEY = "gw-log-lines-key-3c9e"
FORGED = "2026-12-06 01:00:00,000 WARNING gateway.auth.guard [-] key 'boss' used from 10.0.0.1"


def test_a_newline_in_the_path_does_not_forge_a_log_line(
    default_model_dir: Path, tmp_path: Path
) -> None:
    registry = bundled_registry_in(tmp_path)
    env = {"GATEWAY_API_KEYS": KEY, "GATEWAY_ACCESS_LOG": "true", "GATEWAY_LOG_FORMAT": "text"}
    # uvicorn decodes the path: "%0a" reaches the access log and the auth warning as a newline.
    forged = "%0a" + FORGED.replace(" ", "%20")
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        assert client.post(f"/api/embed{forged}", json={}).status_code == 404
        wrong = {"Authorization": "Bearer nope"}  # a route with a parameter takes the newline
        assert client.get(f"/v1/models/m{forged}", headers=wrong).status_code == 401
    log = server.log()
    assert not [line for line in log.splitlines() if line.startswith(FORGED[:30])]
    assert f"POST /api/embed\\n{FORGED} 404" in log  # the access log, escaped
    assert f"GET /v1/models/m\\n{FORGED} 401" in log
    assert f"on /v1/models/m\\n{FORGED}: unknown key" in log  # the auth failure, escaped
