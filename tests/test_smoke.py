"""The real server answers the bundled default model through each API family."""

from tests.support.server import GatewayServer


def test_ollama_embed_answers_for_default_model(server: GatewayServer) -> None:
    with server.client() as client:
        response = client.post("/api/embed", json={"model": "all-minilm", "input": "hello"})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "all-minilm"
    assert len(body["embeddings"]) == 1 and len(body["embeddings"][0]) == 384
