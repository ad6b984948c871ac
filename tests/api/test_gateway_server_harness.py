"""tools.gateway_server.GatewayServer when the port it picked is taken before the gateway binds
it (another process's listener, or an outgoing connection's local port, on a busy machine): the
gateway is started again on another port, and a 200 from whatever took the port is not taken
for the gateway's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.models import bundled_registry_in
from tools import gateway_server
from tools.gateway_server import GatewayServer


class Impostor(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"not the gateway"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[int]:
    """A server answering 200 to everything on a loopback port; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_taken_before_the_bind_starts_the_gateway_on_another(
    default_model_dir: Path, tmp_path: Path, impostor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([impostor])
    real_free_port = gateway_server.free_port
    monkeypatch.setattr(gateway_server, "free_port", lambda: next(ports, None) or real_free_port())
    server = GatewayServer(registry=bundled_registry_in(tmp_path))
    assert server.port == impostor
    with server, server.client() as client:
        assert server.port != impostor
        assert client.get("/").text == "Ollama is running"
        assert client.get("/api/version").status_code == 200
    assert "address already in use" in (tmp_path / f"gateway-{impostor}.log").read_text()
