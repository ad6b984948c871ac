"""A rerank request that names no model (Cohere v1 allows it, Infinity's client sends a
placeholder) uses a model that is there; so does an embedding request with the placeholder."""

from __future__ import annotations

from tools.gateway_server import GatewayServer


def test_unnamed_model_falls_back_to_the_default_embedder(server: GatewayServer) -> None:
    """The repository's registry prefers answerai-colbert-small, which is not pulled here."""
    body = {"query": "a cat", "documents": ["the stock market fell", "a kitten sleeps"]}
    with server.client() as client:
        response = client.post("/v1/rerank", json=body)
        named = client.post("/v1/rerank", json={**body, "model": "answerai-colbert-small"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["model"] == "all-minilm"
    assert [r["index"] for r in answer["results"]] == [1, 0]
    assert named.status_code == 404  # naming the missing model is still an error
    assert named.json()["error"]["code"] == "model_not_found"


def test_infinity_placeholder_names_no_model(server: GatewayServer) -> None:
    """Infinity's generated client sends model "default/not-specified" when its caller names
    none: rerank and embedding routes answer with their default model, and echo its name."""
    unnamed = "default/not-specified"
    body = {"query": "a cat", "documents": ["the stock market fell", "a kitten sleeps"]}
    with server.client() as client:
        ranked = client.post("/rerank", json={**body, "model": unnamed})
        cohere = client.post("/v1/rerank", json={**body, "model": unnamed})
        embedded = {
            path: client.post(path, json={"model": unnamed, "input": "a cat"})
            for path in ("/v1/embeddings", "/embeddings")
        }
    assert ranked.status_code == 200, ranked.text
    assert ranked.json()["model"] == "all-minilm"
    assert [r["index"] for r in ranked.json()["results"]] == [1, 0]
    assert cohere.status_code == 200, cohere.text
    assert cohere.json()["model"] == "all-minilm"
    for path, response in embedded.items():
        assert response.status_code == 200, (path, response.text)
        assert response.json()["model"] == "all-minilm"
        assert len(response.json()["data"][0]["embedding"]) == 384
