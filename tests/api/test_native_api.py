"""The native routes of the server this gateway replaces: /embed, /batch (and /txt/...), /health,
/info. They serve the registry's default model (here all-minilm); nomic's `dim` and `task` are
checked in test_nomic_recipe.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.api import assert_ollama_error, ollama_embed
from tools.gateway_server import GatewayServer

TEXTS = ["a cat sits on the mat", "stock market crash", "東京は日本の首都です。"]


@pytest.fixture(scope="module")
def raw(server: GatewayServer) -> tuple[np.ndarray, int]:
    """(vectors of TEXTS, tokens of TEXTS[0]) through /api/embed."""
    with server.client() as client:
        first = client.post("/api/embed", json={"model": "all-minilm", "input": TEXTS[0]}).json()
        return ollama_embed(client, "all-minilm", TEXTS), first["prompt_eval_count"]


@pytest.mark.parametrize("path", ["/embed", "/txt/embed"])
def test_embed_one(server: GatewayServer, raw: tuple[np.ndarray, int], path: str) -> None:
    vectors, tokens = raw
    with server.client() as client:
        for body in ({"input": TEXTS[0]}, {"input": TEXTS[0], "dim": 384}):
            response = client.post(path, json=body)
            assert response.status_code == 200, response.text
            data = response.json()
            assert set(data) == {"embedding", "tokens", "time_ms"}
            np.testing.assert_array_equal(np.asarray(data["embedding"], np.float32), vectors[0])
            assert data["tokens"] == tokens
            assert isinstance(data["time_ms"], float) and data["time_ms"] >= 0


@pytest.mark.parametrize("path", ["/batch", "/txt/batch"])
def test_batch(server: GatewayServer, raw: tuple[np.ndarray, int], path: str) -> None:
    vectors, tokens = raw
    with server.client() as client:
        response = client.post(path, json={"inputs": TEXTS, "dim": 384})
        assert response.status_code == 200, response.text
        data = response.json()
        np.testing.assert_array_equal(np.asarray(data["embeddings"], np.float32), vectors)
        assert len(data["tokens"]) == len(TEXTS) and data["tokens"][0] == tokens
        empty = client.post(path, json={"inputs": []})
        assert empty.status_code == 200 and empty.json()["embeddings"] == []


def test_dim_outside_the_model_is_refused(server: GatewayServer) -> None:
    with server.client() as client:
        for path, body in (("/embed", {"input": "hi"}), ("/txt/batch", {"inputs": ["hi"]})):
            for dim in (0, 385, 2.5, "64"):
                response = client.post(path, json={**body, "dim": dim})
                assert_ollama_error(response, 400, "dim must be", "from 1 to 384")
            cut = client.post(path, json={**body, "dim": 128})
            assert cut.status_code == 200, cut.text


def test_health(server: GatewayServer) -> None:
    with server.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK" and body["text_model"] is True
    assert body["default_model"] == "all-minilm"
    assert body["models"]["all-minilm"] in {"loaded", "ready"}
    assert body["models"]["nomic-embed-text"] == "not pulled"


def test_info(server: GatewayServer) -> None:
    with server.client() as client:
        response = client.get("/info")
    assert response.status_code == 200
    body = response.json()
    assert body["default_model"] == "all-minilm"
    assert body["version"] and body["uptime_s"] >= 0
    assert body["settings"]["api_keys"] == "0 configured"
    assert body["runtime"]["device"] in {"cpu", "cuda"}
    names = {model["name"] for model in body["models"]}
    assert {"all-minilm", "nomic-embed-text"} <= names


def test_the_model_field_names_the_model(
    server: GatewayServer, raw: tuple[np.ndarray, int]
) -> None:
    """`model`, the gateway's extension (nomic-api-rs serves one model), was ignored: an
    unknown name got the default model's vector with a 200."""
    vectors, _ = raw
    with server.client() as client:
        for path, body in (("/embed", {"input": TEXTS[0]}), ("/txt/batch", {"inputs": TEXTS})):
            unknown = client.post(path, json={**body, "model": "no-such-model"})
            assert_ollama_error(unknown, 404, "model 'no-such-model' not found")
            named = client.post(path, json={**body, "model": "all-minilm"})
            assert named.status_code == 200, named.text
            data = named.json()
            got = data["embedding"] if "embedding" in data else data["embeddings"]
            expected = vectors[0] if "embedding" in data else vectors
            np.testing.assert_array_equal(np.asarray(got, np.float32), expected)
