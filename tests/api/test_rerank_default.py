"""A rerank request that names no model (Cohere v1 allows it) uses a model that is there."""

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
