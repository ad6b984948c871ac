"""The server's text log: a client cannot write lines of its own into it, and the access log's
level follows who failed (the server: WARNING; the client: INFO)."""

from __future__ import annotations

from pathlib import Path

from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

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


def test_access_lines_of_5xx_are_warnings_and_of_4xx_info(
    default_model_dir: Path, tmp_path: Path
) -> None:
    """Server failures reach an alert on WARNING; clients' mistakes must not page anyone."""
    broken = tmp_path / "broken-model"  # no runtime can read it: every load fails, a 500
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an ONNX graph")
    (broken / "tokenizer.json").write_bytes((default_model_dir / "tokenizer.json").read_bytes())
    registry = write_registry(
        tmp_path / "registry.yaml",
        {"minilm": minilm_entry(default_model_dir), "broken": minilm_entry(broken)},
        default_model="minilm",
    )
    env = {"GATEWAY_API_KEYS": KEY, "GATEWAY_ACCESS_LOG": "true", "GATEWAY_LOG_FORMAT": "text"}
    auth = {"Authorization": f"Bearer {KEY}"}
    sent = {  # request ID -> (path, body, headers, the status it gets)
        "lv-500-ollama": ("/api/embed", {"model": "broken", "input": "x"}, auth, 500),
        "lv-500-openai": ("/v1/embeddings", {"model": "broken", "input": "x"}, auth, 500),
        "lv-404": ("/api/embed", {"model": "nope", "input": "x"}, auth, 404),
        "lv-400": ("/api/embed", {"model": "minilm", "input": "x", "dimensions": 1.5}, auth, 400),
        "lv-401": ("/api/embed", {"model": "minilm", "input": "x"}, {}, 401),
        "lv-200": ("/api/embed", {"model": "minilm", "input": "x"}, auth, 200),
    }
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        for request_id, (path, body, headers, status) in sent.items():
            answer = client.post(path, json=body, headers={**headers, "X-Request-ID": request_id})
            assert answer.status_code == status, (request_id, answer.text)
    access = [line for line in server.log().splitlines() if " gateway.access [lv-" in line]
    levels = {line.split(" [")[1].split("]")[0]: line.split()[2] for line in access}
    assert levels == {
        "lv-500-ollama": "WARNING",
        "lv-500-openai": "WARNING",
        "lv-404": "INFO",
        "lv-400": "INFO",
        "lv-401": "INFO",
        "lv-200": "INFO",
    }, access
