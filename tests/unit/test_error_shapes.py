"""Each Router answers errors in its wire family's shape (in-process app, no model files)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from gateway.api.app import create_app
from gateway.connection_answers import IMPLEMENTED_METHODS
from gateway.settings import Settings

ENTRY = {
    "kind": "text",
    "source": "/nonexistent",
    "files": {"model": "m.onnx", "tokenizer": "t.json"},
    "dim": 8,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    folder = tmp_path_factory.mktemp("errors")
    registry = folder / "registry.yaml"
    registry.write_text(yaml.safe_dump({"models": {"tiny": ENTRY}}))
    settings = Settings.load(
        environ={"GATEWAY_REGISTRY": str(registry), "GATEWAY_MODELS_DIR": str(folder / "m")}
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def openai_shaped(body: Any) -> bool:
    return set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}


def ollama_shaped(body: Any) -> bool:
    return set(body) == {"error"} and isinstance(body["error"], str)


@pytest.mark.parametrize(
    ("path", "body", "openai"),
    [
        ("/v1/embeddings", {"model": "nope", "input": "x"}, True),
        ("/v1/rerank", {"model": "nope", "query": "q", "documents": ["d"]}, True),
        ("/v2/rerank", {"model": "nope", "query": "q", "documents": ["d"]}, True),
        ("/api/embed", {"model": "nope", "input": "x"}, False),
        ("/api/show", {"model": "nope"}, False),
        ("/api/rerank", {"model": "nope", "query": "q", "documents": ["d"]}, False),
        ("/rerank", {"model": "nope", "query": "q", "documents": ["d"]}, False),
        # nomic-api-rs's routes: `model` is the gateway's extension; it fell back to the default.
        ("/embed", {"model": "nope", "input": "x"}, False),
        ("/txt/embed", {"model": "nope", "input": "x"}, False),
        ("/txt/batch", {"model": "nope", "inputs": ["x"]}, False),
        ("/img/embed", {"model": "nope", "content": "x"}, False),
        ("/img/batch", {"model": "nope", "contents": ["x"]}, False),
    ],
)
def test_unknown_model_in_each_family(
    client: TestClient[Any], path: str, body: dict[str, Any], openai: bool
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 404, response.text
    shaped = openai_shaped if openai else ollama_shaped
    assert shaped(response.json()), response.text
    assert "'nope' not found" in response.text


def test_validation_errors_keep_the_family_shape(client: TestClient[Any]) -> None:
    response = client.post("/v1/embeddings", json={"input": "x"})
    assert response.status_code == 400 and openai_shaped(response.json())
    assert "model" in response.json()["error"]["message"]
    response = client.post("/embed", json={"dim": 8})
    assert response.status_code == 400 and ollama_shaped(response.json())


def test_errors_before_routing_pick_the_family_by_path(client: TestClient[Any]) -> None:
    response = client.get("/v1/no-such-route")
    assert response.status_code == 404 and openai_shaped(response.json())
    response = client.get("/no-such-route")
    assert response.status_code == 404 and ollama_shaped(response.json())
    response = client.get("/api/embed")
    assert response.status_code == 405 and ollama_shaped(response.json())


def test_a_model_without_files_is_not_found_with_a_pull_hint(client: TestClient[Any]) -> None:
    response = client.post("/api/embed", json={"model": "tiny", "input": "x"})
    assert response.status_code == 404 and ollama_shaped(response.json()), response.text
    assert "try pulling it first" in response.json()["error"]
    response = client.post("/v1/embeddings", json={"model": "tiny", "input": "x"})
    assert response.status_code == 404 and openai_shaped(response.json()), response.text
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/embed", {"POST", "OPTIONS"}),
        ("PUT", "/v1/embeddings", {"POST", "OPTIONS"}),
        ("TRACE", "/embed", {"POST", "OPTIONS"}),
        ("POST", "/v1/models", {"GET", "OPTIONS"}),
        ("DELETE", "/health", {"GET", "OPTIONS"}),
    ],
)
def test_a_wrong_method_names_the_allowed_ones(
    client: TestClient[Any], method: str, path: str, allowed: set[str]
) -> None:
    """A 405 must carry Allow (RFC 9110 15.5.6); the family's handler used to drop it."""
    response = client.request(method, path)
    assert response.status_code == 405, response.text
    named = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
    assert allowed <= named, response.headers


def test_the_501_for_an_unknown_method_names_the_methods_the_routes_take(
    client: TestClient[Any],
) -> None:
    """The connection's answer to BREW lists them (gateway/connection_answers.py)."""
    routes = [r for r in client.app.routes if isinstance(r, HTTPRoute)]
    taken = {method for route in routes for method in route.methods}
    assert taken == set(IMPLEMENTED_METHODS)


def test_decoding_no_ids_is_tei_empty(client: TestClient[Any]) -> None:
    """`ids: []` was a 422 saying ids "must be a list of token ids", which it is; TEI's kind for
    an empty request is Empty (400), as /tokenize answers `inputs: []`."""
    response = client.post("/decode", json={"ids": []})
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "ids cannot be empty", "error_type": "Empty"}
    tokenize = client.post("/tokenize", json={"inputs": []})
    assert tokenize.status_code == 400 and tokenize.json()["error_type"] == "Empty"
