"""gateway.scoring: MaxSim and cosine against direct formulas, and the relevance scales."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.rerank import RerankScores
from gateway.scoring import (
    cosine_scores,
    maxsim,
    rank,
    relevance_from_cosine,
    relevance_from_logits,
    relevance_from_maxsim,
)


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def naive_maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """sum over query tokens of the best dot product with any document token, in float64."""
    q, d = query.astype(np.float64), document.astype(np.float64)
    return sum(max(float(qi @ dj) for dj in d) for qi in q)


@pytest.mark.parametrize("max_elements", [1 << 24, 32 * 40, 1])
def test_maxsim_equals_the_definition(max_elements: int) -> None:
    """Any grouping of documents (one block, several, one per document) gives the same scores."""
    rng = np.random.default_rng(0)
    query = unit_rows(rng, 32, 16)
    documents = [unit_rows(rng, n, 16) for n in (1, 5, 300, 17, 2, 64, 1)]
    scores = maxsim(query, documents, max_elements=max_elements)
    expected = [naive_maxsim(query, d) for d in documents]
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert scores.dtype == np.float64 and scores.shape == (len(documents),)


def test_maxsim_small_example_by_hand() -> None:
    query = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    documents = [
        np.array([[1.0, 0.0]], dtype=np.float32),  # 1 + 0
        np.array([[0.6, 0.8], [0.0, 1.0]], dtype=np.float32),  # 0.6 + 1
        np.array([[-1.0, 0.0], [0.0, -1.0]], dtype=np.float32),  # 0 + 0 (max of -1, 0)
    ]
    np.testing.assert_allclose(maxsim(query, documents), [1.0, 1.6, 0.0], atol=1e-7)
    assert maxsim(query, []).shape == (0,)


def test_maxsim_rejects_bad_shapes() -> None:
    query = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="document 1"):
        maxsim(query, [np.ones((2, 4)), np.ones((2, 5))])
    with pytest.raises(ValueError, match="document 0"):
        maxsim(query, [np.ones((0, 4))])
    with pytest.raises(ValueError, match="query"):
        maxsim(np.ones(4), [np.ones((2, 4))])


def test_cosine_scores() -> None:
    rng = np.random.default_rng(1)
    query = rng.standard_normal(8)
    documents = rng.standard_normal((5, 8)) * 3
    expected = [float(query @ d / (np.linalg.norm(query) * np.linalg.norm(d))) for d in documents]
    np.testing.assert_allclose(cosine_scores(query, documents), expected, atol=1e-12)


def test_relevance_scales() -> None:
    raw = np.array([32.0, -32.0, 8.0])
    # Mean best cosine per query token (1, -1, 0.25), mapped to [0, 1] by (s + 1) / 2.
    np.testing.assert_allclose(relevance_from_maxsim(raw, 32), [1.0, 0.0, 0.625])
    np.testing.assert_allclose(relevance_from_maxsim(raw, 32, "raw"), raw)
    with pytest.raises(ValueError):
        relevance_from_maxsim(raw, 0)
    logits = np.array([0.0, 2.0, -2.0, 800.0, -800.0])
    expected = [0.5, 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2)), 1.0, 0.0]
    with np.errstate(over="raise"):
        np.testing.assert_allclose(relevance_from_logits(logits), expected, atol=1e-12)
    np.testing.assert_allclose(relevance_from_logits(logits, "raw"), logits)
    cosines = np.array([1.0000001, -1.0, 0.0, 0.5, -0.3])
    np.testing.assert_allclose(relevance_from_cosine(cosines), [1.0, 0.0, 0.5, 0.75, 0.35])
    np.testing.assert_allclose(relevance_from_cosine(cosines, "raw"), cosines)


def test_relevance_maps_keep_the_order_and_stay_in_0_1() -> None:
    rng = np.random.default_rng(5)
    cosines = rng.uniform(-1, 1, 200)
    for raw, relevance in (
        (cosines, relevance_from_cosine(cosines)),
        (cosines * 32, relevance_from_maxsim(cosines * 32, 32)),
        (cosines * 8, relevance_from_logits(cosines * 8)),
    ):
        assert ((relevance >= 0) & (relevance <= 1)).all()
        assert rank(relevance) == rank(raw)


def test_rank_is_descending_and_stable() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.9, -1.0])
    assert rank(scores) == [1, 3, 2, 0, 4]
    assert rank(scores, top_n=2) == [1, 3]
    assert rank(scores, top_n=0) == []


def test_rerank_orders_by_raw_scores_where_relevance_saturates() -> None:
    """sigmoid(38) and sigmoid(40) are both 1.0 in float64; the logits still rank them."""
    logits = np.array([38.0, 40.0, -2.0])
    relevance = relevance_from_logits(logits)
    assert relevance[0] == relevance[1] == 1.0
    assert RerankScores(logits, relevance, 0, []).top() == [1, 0, 2]


def test_a_document_token_cap_past_the_models_length_tokenizes_nothing() -> None:
    """max_tokens_per_doc at or past the tokenizer's own cut (Cohere's default is 4096) cannot
    change a document: the documents are not tokenized a second time for it."""
    from types import SimpleNamespace

    from gateway.rerank import cut_to_tokens

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tokenized for a cap that cannot cut")

    tokenizer = SimpleNamespace(truncation={"max_length": 256}, encode_batch=refuse)
    documents = ["a", "b c"]
    assert cut_to_tokens(tokenizer, documents, 4096) == (documents, [])  # type: ignore[arg-type]
    assert cut_to_tokens(tokenizer, documents, 256) == (documents, [])  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        cut_to_tokens(tokenizer, documents, 255)  # type: ignore[arg-type]
