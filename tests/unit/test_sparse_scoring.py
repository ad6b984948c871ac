"""Rerank with a SPLADE model: the dot product of sparse vectors (against numpy's dot of the
dense rows), its relevance_score, and the encoder's pair scoring on run()'s records."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gateway.encoders.sparse import SparseEncoder, from_pairs, nonzero_pairs
from gateway.scoring import relevance_from_sparse_dot, sparse_dot

VOCAB = 500


def random_rows(seed: int, count: int, density: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.exponential(1.0, size=(count, VOCAB)).astype(np.float32)
    rows[rng.random((count, VOCAB)) > density] = 0.0
    return rows


def test_sparse_dot_is_the_dot_product_of_the_dense_rows() -> None:
    query = random_rows(0, 1, 0.1)[0]
    documents = random_rows(1, 50, 0.05)
    documents[3] = 0.0  # no weight at all
    documents[7] = np.where(query > 0, 0.0, 1.0)  # no term in common
    documents[9] = query  # the query itself
    ours = sparse_dot(
        from_pairs(nonzero_pairs(query)), [from_pairs(nonzero_pairs(row)) for row in documents]
    )
    expected = documents.astype(np.float64) @ query.astype(np.float64)
    assert ours.dtype == np.float64 and ours.shape == (50,)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=0)
    assert ours[3] == ours[7] == 0.0
    assert ours[9] == pytest.approx(float(query.astype(np.float64) @ query))


def test_sparse_dot_of_nothing_and_with_an_empty_query() -> None:
    empty = from_pairs(nonzero_pairs(np.zeros(VOCAB, dtype=np.float32)))
    documents = [from_pairs(nonzero_pairs(row)) for row in random_rows(2, 3, 0.1)]
    assert sparse_dot(empty, documents).tolist() == [0.0, 0.0, 0.0]
    assert sparse_dot(documents[0], []).shape == (0,)


def test_relevance_ranks_as_the_dot_product_and_stays_in_0_1() -> None:
    query = random_rows(3, 1, 0.1)[0]
    documents = random_rows(4, 40, 0.2)
    q = from_pairs(nonzero_pairs(query))
    scores = sparse_dot(q, [from_pairs(nonzero_pairs(row)) for row in documents])
    query_self = float(sparse_dot(q, [q])[0])
    relevance = relevance_from_sparse_dot(scores, query_self)
    assert np.all((relevance >= 0) & (relevance < 1))
    assert np.argsort(-relevance, kind="stable").tolist() == np.argsort(-scores).tolist()
    np.testing.assert_allclose(relevance, scores / (scores + query_self), rtol=1e-15)
    # The query scored against itself is 1/2; sharing no term is 0; the raw scale is the score.
    assert relevance_from_sparse_dot(np.array([query_self, 0.0]), query_self).tolist() == [0.5, 0]
    np.testing.assert_array_equal(relevance_from_sparse_dot(scores, query_self, "raw"), scores)
    # The same for any scaling of the model's weights: no per-model constant.
    scaled = relevance_from_sparse_dot(scores * 9.0, query_self * 9.0)
    np.testing.assert_allclose(scaled, relevance, rtol=1e-12)
    # A query without weights: every score 0, every relevance 0 (no 0 / 0).
    assert relevance_from_sparse_dot(np.zeros(2), 0.0).tolist() == [0.0, 0.0]


def test_the_encoders_pair_scoring_on_runs_records() -> None:
    """score_pairs gets run()'s records (query first) and answers the dot products with the
    query, without loading a model (it uses nothing of one)."""
    rows = random_rows(5, 4, 0.1)
    raw = [nonzero_pairs(row) for row in rows]
    assert all(pairs.itemsize == 8 for pairs in raw)  # int32 index + float32 weight
    encoder: Any = SimpleNamespace(finish=lambda r, o: SparseEncoder.finish(encoder, r, o))
    scores, relevance = SparseEncoder.score_pairs(encoder, raw, "normalized")
    expected = rows[1:].astype(np.float64) @ rows[0].astype(np.float64)
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    query_self = float(rows[0].astype(np.float64) @ rows[0])
    np.testing.assert_allclose(relevance, expected / (expected + query_self), rtol=1e-12)
