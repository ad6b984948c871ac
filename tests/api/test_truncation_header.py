"""Inputs cut to the context length are named in X-Truncated-Inputs, on every embedding route."""

from __future__ import annotations

import pytest

from tools.gateway_server import GatewayServer

LONG = "word " * 400  # well past all-minilm's 256 tokens
SHORT = "a short sentence"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/embed", {"model": "all-minilm", "input": [SHORT, LONG, SHORT, LONG]}),
        ("/v1/embeddings", {"model": "all-minilm", "input": [SHORT, LONG, SHORT, LONG]}),
        ("/batch", {"inputs": [SHORT, LONG, SHORT, LONG]}),
    ],
)
def test_truncated_inputs_are_named(server: GatewayServer, path: str, body: dict) -> None:
    with server.client() as client:
        response = client.post(path, json=body)
        plain = client.post(path, json={**body, **_only_short(body)})
    assert response.status_code == 200
    assert response.headers["x-truncated-inputs"] == "1,3"
    assert plain.status_code == 200
    assert "x-truncated-inputs" not in plain.headers


def test_single_input_routes_name_it_too(server: GatewayServer) -> None:
    with server.client() as client:
        legacy = client.post("/api/embeddings", json={"model": "all-minilm", "prompt": LONG})
        native = client.post("/embed", json={"input": LONG})
    assert legacy.headers["x-truncated-inputs"] == "0"
    assert native.headers["x-truncated-inputs"] == "0"


def test_browsers_may_read_the_header(server: GatewayServer) -> None:
    origin = "http://localhost:3000"
    with server.client() as client:
        response = client.post(
            "/api/embed",
            json={"model": "all-minilm", "input": LONG},
            headers={"Origin": origin},
        )
    assert response.headers["access-control-allow-origin"] == origin
    assert "x-truncated-inputs" in response.headers["access-control-expose-headers"].lower()


def _only_short(body: dict) -> dict:
    key = "inputs" if "inputs" in body else "input"
    return {key: [SHORT, SHORT]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # One chunk: by default Cohere's route reads LONG whole, in chunks.
        ("/v1/rerank", {"query": "q", "documents": [SHORT, LONG], "max_chunks_per_doc": 1}),
        ("/api/rerank", {"model": "all-minilm", "query": "q", "documents": [SHORT, LONG]}),
        ("/rerank", {"query": "q", "documents": [SHORT, LONG]}),
        ("/rerank", {"query": "q", "texts": [SHORT, LONG]}),
    ],
)
def test_rerank_names_cut_documents(server: GatewayServer, path: str, body: dict) -> None:
    with server.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-truncated-inputs"] == "1"
