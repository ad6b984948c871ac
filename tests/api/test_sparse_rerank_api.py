"""Rerank with a SPLADE model through the real server (the tiny random SPLADE of tools/splade.py):
every rerank route scores a document by the dot product of its weights with the query's, equal
to numpy's dot of /embed_sparse's vectors and to sentence-transformers' SparseEncoder on the same
weights; relevance_score is s / (s + q.q); Cohere's routes read a long document in chunks and
score it by its best, as for dense models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer

from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry
from tools.splade import MAX_TOKENS, sentence_transformers_weights, splade_dir, splade_entry

SPARSE = "tiny-splade"
# Reads 16 tokens at once: 14 words between [CLS] and [SEP], so documents split cheaply.
SHORT = "tiny-splade-short"
WINDOW = 14
# Rerank runs the query and documents in another batch than /embed_sparse: a few fp32 ulps.
RTOL = 1e-6
QUERY = "which animal sat on the mat?"
DOCUMENTS = [
    "the cat sat on the mat",
    "stock prices fell sharply on monday",
    "a dog is an animal that barks",
    "mat",
    "sat sat sat animal animal",
]
# One word piece each: a document of both lists splits into two chunks of WINDOW words.
FILLER = [
    "house",
    "tree",
    "river",
    "road",
    "city",
    "car",
    "book",
    "door",
    "window",
    "table",
    "chair",
    "water",
    "music",
    "game",
]
ANIMALS = [
    "cat",
    "dog",
    "horse",
    "bird",
    "fish",
    "cow",
    "pig",
    "sheep",
    "goat",
    "mouse",
    "lion",
    "bear",
    "wolf",
    "fox",
]


@pytest.fixture(scope="module")
def model_dir(default_model_dir: Path) -> Path:
    return splade_dir(default_model_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def server(
    model_dir: Path, default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = write_registry(
        tmp_path_factory.mktemp("sparse-rerank") / "registry.yaml",
        {
            "all-minilm": minilm_entry(default_model_dir),
            SPARSE: splade_entry(model_dir),
            SHORT: splade_entry(model_dir, max_tokens=WINDOW + 2),
        },
    )
    with GatewayServer(registry=registry) as running:
        yield running


@pytest.fixture
def client(server: GatewayServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def vectors(client: httpx.Client, model: str, texts: list[str]) -> np.ndarray:
    """/embed_sparse's vectors as dense float64 rows."""
    response = client.post("/embed_sparse", json={"inputs": texts, "model": model})
    assert response.status_code == 200, response.text
    rows = np.zeros((len(texts), 30522), dtype=np.float64)
    for row, pairs in enumerate(response.json()):
        rows[row, [p["index"] for p in pairs]] = [p["value"] for p in pairs]
    return rows


def dots(client: httpx.Client, model: str, query: str, documents: list[str]) -> np.ndarray:
    """The documents' dot products with the query, from /embed_sparse's vectors (numpy)."""
    rows = vectors(client, model, [query, *documents])
    return np.asarray(rows[1:] @ rows[0])


def by_index(results: list[dict[str, Any]], field: str) -> list[float]:
    assert [r[field] for r in results] == sorted((r[field] for r in results), reverse=True)
    return [r[field] for r in sorted(results, key=lambda r: r["index"])]


def rerank_scores(client: httpx.Client, route: str, raw: bool) -> list[float]:
    """Each document's score (input order) from one rerank route, in its own shape."""
    if route in ("/v1/rerank", "/v2/rerank"):
        body = {"model": SPARSE, "query": QUERY, "documents": DOCUMENTS, "raw_scores": raw}
        response = client.post(route, json=body)
        assert response.status_code == 200, response.text
        return by_index(response.json()["results"], "relevance_score")
    if route == "tei":
        body = {"model": SPARSE, "query": QUERY, "texts": DOCUMENTS, "raw_scores": raw}
        response = client.post("/rerank", json=body)
        assert response.status_code == 200, response.text
        return by_index(response.json(), "score")
    if route == "infinity":
        body = {"model": SPARSE, "query": QUERY, "documents": DOCUMENTS, "raw_scores": raw}
        response = client.post("/rerank", json=body)
        assert response.status_code == 200, response.text
        return by_index(response.json()["results"], "relevance_score")
    assert route == "/api/rerank" and not raw  # the n8n node's shape has no raw scores
    body = {"model": SPARSE, "query": QUERY, "documents": DOCUMENTS}
    response = client.post("/api/rerank", json=body)
    assert response.status_code == 200, response.text
    return by_index(response.json()["results"], "relevance_score")


ROUTES = ["/v1/rerank", "/v2/rerank", "tei", "infinity", "/api/rerank"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_ranks_by_the_dot_product_of_embed_sparses_vectors(
    client: httpx.Client, route: str
) -> None:
    expected = dots(client, SPARSE, QUERY, DOCUMENTS)
    query_self = float(dots(client, SPARSE, QUERY, [QUERY])[0])
    assert expected.max() > 0 and query_self > 0
    relevance = rerank_scores(client, route, raw=False)
    np.testing.assert_allclose(relevance, expected / (expected + query_self), rtol=RTOL)
    if route != "/api/rerank":
        np.testing.assert_allclose(rerank_scores(client, route, raw=True), expected, rtol=RTOL)


def test_scores_match_sentence_transformers_on_the_same_weights(
    client: httpx.Client, model_dir: Path
) -> None:
    """The reference test_splade_parity.py holds weights to: SparseEncoder's vectors, their dot
    product (SparseEncoder.similarity's default for SPLADE) taken here."""
    weights = sentence_transformers_weights(model_dir, [QUERY, *DOCUMENTS], MAX_TOKENS)
    reference = weights[1:].astype(np.float64) @ weights[0].astype(np.float64)
    ours = rerank_scores(client, "/v2/rerank", raw=True)
    # Weights within 1e-5 of the reference's (see test_splade_parity.py); dots of ~100 terms.
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
    assert np.argsort(ours).tolist() == np.argsort(reference).tolist()


def test_cohere_reads_a_long_document_in_chunks_scored_by_the_best(
    client: httpx.Client, model_dir: Path
) -> None:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for word in FILLER + ANIMALS:
        assert len(tokenizer.encode(word, add_special_tokens=False).ids) == 1, word
    query = "cat dog horse"
    # A random model: which half scores higher is the weights' business. The lower goes first,
    # so that only a reader of the second chunk finds the higher.
    halves = [" ".join(FILLER), " ".join(ANIMALS)]
    scores = dots(client, SHORT, query, halves)
    order = np.argsort(scores)
    first, second = halves[order[0]], halves[order[1]]
    expected = scores[order]
    assert expected[1] > expected[0] * 1.01
    document = f"{first} {second}"
    body = {"model": SHORT, "query": query, "documents": [document], "raw_scores": True}
    chunked = client.post("/v1/rerank", json=body)
    assert chunked.status_code == 200, chunked.text
    assert "x-truncated-inputs" not in chunked.headers
    assert chunked.json()["meta"]["billed_units"]["search_units"] == 1
    (result,) = chunked.json()["results"]
    assert result["relevance_score"] == pytest.approx(expected.max(), rel=RTOL)
    # One chunk: the model's own cut, the first window; the document named as cut.
    once = client.post("/v1/rerank", json={**body, "max_chunks_per_doc": 1})
    assert once.status_code == 200, once.text
    assert once.headers["x-truncated-inputs"] == "0"
    assert once.json()["results"][0]["relevance_score"] == pytest.approx(expected[0], rel=RTOL)
    # TEI's route reads the first window, as for any model.
    tei = {"model": SHORT, "query": query, "texts": [document], "raw_scores": True}
    answer = client.post("/rerank", json=tei)
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["score"] == pytest.approx(expected[0], rel=RTOL)
