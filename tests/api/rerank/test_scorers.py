"""The three scorers on /v1/rerank: MaxSim of the tiny PyLate ColBERTs against PyLate, the
cosine of a plain embedder, a cross-encoder against transformers; and all-MiniLM-L6-v2's
real token states as ColBERT vectors, ranking the answer first."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.api import assert_openai_error, openai_embed
from tests.support.rerank_api import (
    COLBERTS,
    CROSS,
    MINILM,
    PROXY,
    PROXY_PLAIN,
    SCORE_TOLERANCE,
    TOPIC_DOCUMENTS,
    TOPICS,
    by_index,
    post,
)
from tools import cross_encoder as cross
from tools.colbert_models import DOCUMENTS, PAIRS, QUERIES, ColbertModel
from tools.cross_encoder import transformers_logits
from tools.late_api import sigmoid

# -- MaxSim parity with PyLate -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(COLBERTS))
def test_maxsim_matches_pylate(
    client: httpx.Client,
    colberts: dict[str, ColbertModel],
    pylate_scores: dict[str, np.ndarray],
    name: str,
) -> None:
    model = colberts[COLBERTS[name]]
    raw = np.zeros((len(QUERIES), len(DOCUMENTS)))
    for q, query in enumerate(QUERIES):
        # PyLate reads a document up to document_length: one chunk (the route's default reads
        # the rest of DOCUMENTS[LONG_DOCUMENT] too, tests/api/test_rerank_chunks.py).
        body = {
            "model": name,
            "query": query,
            "documents": DOCUMENTS,
            "raw_scores": True,
            "max_chunks_per_doc": 1,
        }
        results = post(client, "/v1/rerank", body)["results"]
        assert len(results) == len(DOCUMENTS)
        raw[q] = by_index(results)
    ours = np.array([raw[q, d] for q, d in PAIRS])
    diff = float(np.abs(ours - model.scores).max())
    assert diff <= SCORE_TOLERANCE, f"{name}: max abs MaxSim diff {diff} over {len(PAIRS)} pairs"
    assert np.ptp(model.scores) > 100 * SCORE_TOLERANCE, "the pairs must be told apart"
    # Every other combination, against MaxSim of PyLate's own vectors.
    np.testing.assert_allclose(raw, pylate_scores[name], atol=SCORE_TOLERANCE)
    # The default scale: MaxSim over the query's vectors (query_length with [MASK] expansion),
    # mapped into [0, 1] by (s + 1) / 2; the order is the raw order.
    body = {"model": name, "query": QUERIES[1], "documents": DOCUMENTS, "max_chunks_per_doc": 1}
    relevance = by_index(post(client, "/v1/rerank", body)["results"])
    expected = (raw[1] / model.settings.query_length + 1) / 2
    np.testing.assert_allclose(relevance, expected, atol=1e-6)
    assert ((relevance >= 0) & (relevance <= 1)).all()
    assert list(np.argsort(-relevance, kind="stable")) == list(np.argsort(-raw[1], kind="stable"))
    print(f"{name}: max abs MaxSim diff through /v1/rerank {diff:.2e} over {len(PAIRS)} pairs")


# -- other scorers -------------------------------------------------------------------------------


def test_plain_embedder_reranks_by_cosine(client: httpx.Client) -> None:
    vectors = openai_embed(client, MINILM, [TOPICS[0][0], *TOPIC_DOCUMENTS])
    cosine = vectors[1:] @ vectors[0]  # unit vectors: the dot is the cosine
    body = {"model": MINILM, "query": TOPICS[0][0], "documents": TOPIC_DOCUMENTS}
    results = post(client, "/v1/rerank", body)["results"]
    np.testing.assert_allclose(by_index(results), (cosine + 1) / 2, atol=1e-5)
    raw = post(client, "/v2/rerank", {**body, "raw_scores": True})["results"]
    np.testing.assert_allclose(by_index(raw), cosine, atol=1e-5)
    assert [r["index"] for r in raw] == [r["index"] for r in results], "order kept"
    for index, (query, _) in enumerate(TOPICS):
        body = {"model": MINILM, "query": query, "documents": TOPIC_DOCUMENTS, "top_n": 1}
        assert post(client, "/v1/rerank", body)["results"][0]["index"] == index


def test_cross_encoder_matches_transformers(client: httpx.Client, cross_dir: Path) -> None:
    logits = transformers_logits(cross_dir, cross.QUERY, cross.DOCUMENTS, cross.MAX_TOKENS)
    assert np.ptp(logits) > 0.1, "the pairs are told apart, so the comparison means something"
    # transformers cuts the long pair (longest first): one chunk, the model's own cut.
    body = {
        "model": CROSS,
        "query": cross.QUERY,
        "documents": cross.DOCUMENTS,
        "max_chunks_per_doc": 1,
    }
    relevance = by_index(post(client, "/v1/rerank", body)["results"])
    raw = by_index(post(client, "/v1/rerank", {**body, "raw_scores": True})["results"])
    diff = float(np.abs(raw - logits).max())
    assert diff <= SCORE_TOLERANCE, f"max abs logit diff {diff}"
    np.testing.assert_allclose(relevance, sigmoid(logits), atol=SCORE_TOLERANCE)
    assert ((relevance > 0) & (relevance < 1)).all()
    n8n = post(client, "/api/rerank", {**body, "top_k": 2})["results"]
    assert [row["index"] for row in n8n] == list(np.argsort(-logits)[:2])
    response = client.post("/v1/rerank", json={**body, "truncate": False})
    assert_openai_error(
        response, 400, f"documents[{cross.LONG}]", code="context_length_exceeded", param="documents"
    )
    print(f"cross-encoder through /v1/rerank: max abs logit diff {diff:.2e}")


# -- real weights: MiniLM token states as ColBERT vectors ----------------------------------------


@pytest.mark.parametrize("model", [PROXY, PROXY_PLAIN])
def test_minilm_token_vectors_rank_the_answer_first(client: httpx.Client, model: str) -> None:
    margins = []
    for index, (query, _) in enumerate(TOPICS):
        body = {"model": model, "query": query, "documents": TOPIC_DOCUMENTS}
        n8n = post(client, "/api/rerank", body)["results"]
        cohere_shape = post(client, "/v1/rerank", body)["results"]
        assert n8n[0]["index"] == index, f"{query!r}: {n8n[:3]}"
        assert cohere_shape[0]["index"] == index
        relevance = by_index(cohere_shape)
        np.testing.assert_allclose(by_index(n8n), relevance, atol=1e-6)
        margins.append(float(relevance[index] - np.delete(relevance, index).max()))
    print(
        f"{model}: relevance margin (answer - best other of 9) over {len(TOPICS)} queries: "
        f"min {min(margins):.3f} mean {np.mean(margins):.3f}"
    )
    assert min(margins) > 0
