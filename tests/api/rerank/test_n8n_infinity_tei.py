"""The other rerank request shapes: the n8n Ollama rerank node's /api/rerank, Infinity's
/rerank and TEI's."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from tests.support.api import assert_ollama_error, assert_tei_error
from tests.support.rerank_api import MINILM, PROXY, TOPIC_DOCUMENTS, TOPICS, by_index, post

# -- the n8n Ollama rerank node ------------------------------------------------------------------


def test_n8n_ollama_rerank_shape(client: httpx.Client) -> None:
    query, documents = TOPICS[5][0], TOPIC_DOCUMENTS
    body = {"model": PROXY, "query": query, "documents": documents, "top_k": 3}
    payload = post(client, "/api/rerank", body)
    assert set(payload) == {"model", "results"} and payload["model"] == PROXY
    results = payload["results"]
    assert len(results) == 3 and results[0]["index"] == 5
    for row in results:
        assert set(row) == {"index", "document", "relevance_score"}
        assert row["document"] == documents[row["index"]]  # echoed as the string sent
    scores = [row["relevance_score"] for row in results]
    assert scores == sorted(scores, reverse=True)
    # Without top_k: every document, on the same scale as /v1/rerank.
    everything = post(client, "/api/rerank", {**body, "top_k": None})["results"]
    cohere_shape = post(
        client, "/v1/rerank", {"model": PROXY, "query": query, "documents": documents}
    )
    np.testing.assert_allclose(by_index(everything), by_index(cohere_shape["results"]), atol=1e-6)
    assert [row["index"] for row in everything[:3]] == [row["index"] for row in results]
    assert post(client, "/api/rerank", {**body, "documents": []}) == {"model": PROXY, "results": []}
    # top_k beyond the documents returns them all.
    assert len(post(client, "/api/rerank", {**body, "top_k": 50})["results"]) == len(documents)


def test_n8n_ollama_rerank_errors(client: httpx.Client) -> None:
    body = {"model": PROXY, "query": "why is the sky blue", "documents": TOPIC_DOCUMENTS[:3]}
    cases: list[tuple[dict[str, Any], int, tuple[str, ...]]] = [
        ({**body, "model": "no-such-reranker"}, 404, ("no-such-reranker", "not found")),
        ({k: v for k, v in body.items() if k != "query"}, 400, ("query",)),
        ({k: v for k, v in body.items() if k != "model"}, 400, ("model",)),
        ({**body, "query": "  "}, 400, ("query",)),
        ({**body, "top_k": 0}, 400, ("top_k",)),
        ({**body, "documents": ["fine", 7]}, 400, ("documents",)),
        ({**body, "documents": "not a list"}, 400, ("documents",)),
    ]
    for fields, status, fragments in cases:
        assert_ollama_error(client.post("/api/rerank", json=fields), status, *fragments)
    response = client.post(
        "/api/rerank",
        content=b'{"model": "x", "query": ',
        headers={"content-type": "application/json"},
    )
    assert_ollama_error(response, 400, "json")


# -- Infinity and TEI ----------------------------------------------------------------------------


def test_infinity_shape(client: httpx.Client) -> None:
    body = {
        "model": PROXY,
        "query": TOPICS[7][0],
        "documents": TOPIC_DOCUMENTS,
        "return_documents": True,
        "top_n": 4,
    }
    payload = post(client, "/rerank", body)
    assert payload["object"] == "rerank" and payload["model"] == PROXY
    assert payload["id"].startswith("infinity-") and isinstance(payload["created"], int)
    assert payload["usage"]["total_tokens"] > 0
    results = payload["results"]
    assert len(results) == 4 and results[0]["index"] == 7
    # Infinity's document is the plain string, not Cohere's {"text": ...}.
    assert all(row["document"] == TOPIC_DOCUMENTS[row["index"]] for row in results)
    scores = [row["relevance_score"] for row in results]
    assert scores == sorted(scores, reverse=True)
    plain = post(client, "/rerank", {**body, "return_documents": False})["results"]
    assert all("document" not in row for row in plain)
    response = client.post("/rerank", json={**body, "model": "mxbai-rerank-xsmall-v1"})
    assert_ollama_error(response, 404, "mxbai-rerank-xsmall-v1", "not found")


def test_tei_shape(client: httpx.Client) -> None:
    body = {"query": TOPICS[8][0], "texts": TOPIC_DOCUMENTS, "model": PROXY}
    rows = post(client, "/rerank", {**body, "return_text": True})
    assert isinstance(rows, list) and len(rows) == len(TOPIC_DOCUMENTS)
    assert rows[0]["index"] == 8
    assert all(set(row) == {"index", "score", "text"} for row in rows)
    assert all(row["text"] == TOPIC_DOCUMENTS[row["index"]] for row in rows)
    normalized = by_index(rows, "score")
    raw = by_index(post(client, "/rerank", {**body, "raw_scores": True}), "score")
    # MaxSim over 32 query vectors, mapped into [0, 1].
    np.testing.assert_allclose((raw / 32 + 1) / 2, normalized, atol=1e-6)
    assert all(set(row) == {"index", "score"} for row in post(client, "/rerank", body))
    response = client.post("/rerank", json={**body, "documents": TOPIC_DOCUMENTS})
    assert_tei_error(response, 422, "Validation", "texts")
    # As TEI: a query beside an empty text is a pair it ranks; only an empty batch is refused.
    blank = post(client, "/rerank", {**body, "texts": ["a", ""]})
    assert sorted(row["index"] for row in blank) == [0, 1]
    assert_tei_error(client.post("/rerank", json={**body, "texts": []}), 400, "Empty", "texts")


def test_tei_truncation_fields(client: httpx.Client) -> None:
    """As TEI: `truncate: null` is the default (long texts are cut), and a left
    `truncation_direction` is refused as /embed refuses it, not silently cut on the right."""
    body = {"query": "a cat", "texts": ["a kitten", "word " * 600], "model": MINILM}
    default = post(client, "/rerank", body)
    assert post(client, "/rerank", {**body, "truncate": None}) == default
    assert post(client, "/rerank", {**body, "truncation_direction": "right"}) == default
    for direction in ("left", "Left"):
        left = client.post("/rerank", json={**body, "truncation_direction": direction})
        assert_tei_error(left, 422, "Validation", "truncation_direction")
