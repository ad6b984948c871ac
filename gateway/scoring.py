"""Scoring for rerank: MaxSim for late-interaction vectors, cosine for single vectors, the dot
product for sparse (SPLADE) vectors.

Raw scores and the `relevance_score` that rerank APIs return are kept apart:

- `maxsim` returns ColBERT's score, sum_i max_j q_i . d_j over unit token vectors. Its range,
  [-Nq, Nq], grows with the number of query vectors Nq (query_length with [MASK] expansion:
  32 for answerai-colbert-small and GTE-ModernColBERT), so a raw score means nothing without
  knowing the model, and cannot share a threshold with any other model.
- `relevance_from_maxsim` divides by Nq: the mean, over query tokens, of the best cosine in the
  document, in [-1, 1]; then maps it into [0, 1] by (s + 1) / 2, as `relevance_from_cosine`
  maps a single-vector model's cosine. Both maps are affine with a positive slope, so the
  ranking is exactly that of the raw score. A sigmoid was rejected: it needs a per-model
  temperature nobody publishes.
- `relevance_from_logits` is the sigmoid of a cross-encoder's logit, in (0, 1), as
  sentence-transformers' CrossEncoder and TEI's /rerank return it by default.
- `sparse_dot` is SPLADE's score, the dot product of query and document weights (>= 0,
  unbounded, its scale the model's). `relevance_from_sparse_dot` maps it to s / (s + q.q), q.q
  being the query's score against itself: 0 for a document sharing no term, 1/2 for one that
  scores as the query itself, towards 1 above; increasing in s, so it ranks as the raw score,
  and the same for any scaling of a model's weights, so needs no per-model constant.
Cohere documents relevance_score in [0, 1], and clients compare it to thresholds in that range,
so every model kind answers in [0, 1]. An API that wants the raw number passes scale="raw".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

ScoreScale = Literal["normalized", "raw"]
# Similarity entries one MaxSim step may hold (query tokens x document tokens): 16M floats is
# 64 MiB, enough for ~1000 documents of 300 tokens against a 32-token query at once.
MAX_SIMILARITY_ELEMENTS = 1 << 24


def maxsim(
    query: np.ndarray,
    documents: Sequence[np.ndarray],
    *,
    max_elements: int = MAX_SIMILARITY_ELEMENTS,
) -> np.ndarray:
    """ColBERT MaxSim of one query [Nq, dim] against each document [Nd_k, dim] -> [n] float64.

    Documents of different lengths are scored together without padding: their vectors are
    concatenated, one matmul gives every query-token x document-token similarity, and
    `np.maximum.reduceat` takes the best match within each document's span of columns.
    """
    if query.ndim != 2:
        raise ValueError(f"query must be [tokens, dim], not {query.shape}")
    scores = np.empty(len(documents), dtype=np.float64)
    if len(documents) == 0:
        return scores
    lengths = np.array([len(doc) for doc in documents])
    for index, doc in enumerate(documents):
        if doc.ndim != 2 or doc.shape[1] != query.shape[1] or len(doc) == 0:
            raise ValueError(f"document {index} must be [tokens>0, {query.shape[1]}]")
    # Groups of whole documents whose similarity block stays under max_elements.
    budget = max(max_elements // max(len(query), 1), int(lengths.max()))
    start = 0
    while start < len(documents):
        stop, tokens = start, 0
        while stop < len(documents) and tokens + lengths[stop] <= budget:
            tokens += lengths[stop]
            stop += 1
        block = np.concatenate(documents[start:stop]) if stop - start > 1 else documents[start]
        similarity = query @ block.T  # [Nq, tokens]
        offsets = np.concatenate([[0], np.cumsum(lengths[start : stop - 1])])
        best = np.maximum.reduceat(similarity, offsets, axis=1)  # [Nq, documents]
        scores[start:stop] = best.sum(axis=0, dtype=np.float64)
        start = stop
    return scores


class Sparse(Protocol):
    """A sparse vector: vocabulary ids ascending, each once, and their weights."""

    @property
    def indices(self) -> np.ndarray: ...

    @property
    def values(self) -> np.ndarray: ...


def sparse_dot(query: Sparse, documents: Sequence[Sparse]) -> np.ndarray:
    """Dot product of one sparse vector with each of `documents` -> [n] float64: the sum, over
    the ids both hold, of the two weights' product. All documents at once: each of their ids is
    looked up among the query's (sorted) ids, and the products summed per document."""
    if not documents:
        return np.zeros(0, dtype=np.float64)
    ids = np.concatenate([d.indices for d in documents])
    weights = np.concatenate([d.values for d in documents]).astype(np.float64)
    owners = np.repeat(np.arange(len(documents)), [len(d.indices) for d in documents])
    q_ids = np.asarray(query.indices)
    q_weights = np.asarray(query.values, dtype=np.float64)
    if len(q_ids) == 0:
        return np.zeros(len(documents), dtype=np.float64)
    at = np.minimum(np.searchsorted(q_ids, ids), len(q_ids) - 1)
    products = np.where(q_ids[at] == ids, q_weights[at] * weights, 0.0)
    return np.bincount(owners, weights=products, minlength=len(documents))


def cosine_scores(query: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Cosine of one vector [dim] against each row of [n, dim] -> [n] float64."""
    q = np.asarray(query, dtype=np.float64)
    d = np.asarray(documents, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(d, axis=1) * np.linalg.norm(q), 1e-12)
    return np.asarray((d @ q) / norms)


def relevance_from_maxsim(
    scores: np.ndarray, query_vectors: int, scale: ScoreScale = "normalized"
) -> np.ndarray:
    """relevance_score for MaxSim: the mean best cosine per query token, mapped to [0, 1] (or
    the raw score)."""
    if scale == "raw":
        return np.asarray(scores, dtype=np.float64)
    if query_vectors < 1:
        raise ValueError("query_vectors must be at least 1")
    return relevance_from_cosine(np.asarray(scores, dtype=np.float64) / query_vectors)


def relevance_from_cosine(cosines: np.ndarray, scale: ScoreScale = "normalized") -> np.ndarray:
    """relevance_score for a cosine in [-1, 1]: (cos + 1) / 2 in [0, 1] (or the raw cosine)."""
    x = np.asarray(cosines, dtype=np.float64)
    if scale == "raw":
        return x
    # Clipped: float rounding can put a cosine of unit vectors a hair outside [-1, 1].
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def relevance_from_sparse_dot(
    scores: np.ndarray, query_self: float, scale: ScoreScale = "normalized"
) -> np.ndarray:
    """relevance_score for SPLADE: s / (s + q.q), `query_self` being q.q (or the raw score)."""
    x = np.asarray(scores, dtype=np.float64)
    if scale == "raw":
        return x
    # A query with no weight (every score 0) has no relevant document.
    return x / np.maximum(x + query_self, np.finfo(np.float64).tiny)


def relevance_from_logits(logits: np.ndarray, scale: ScoreScale = "normalized") -> np.ndarray:
    """relevance_score for a cross-encoder: sigmoid of its logit (or the raw logit)."""
    x = np.asarray(logits, dtype=np.float64)
    if scale == "raw":
        return x
    # exp of a negative argument only: no overflow warning for large |logit|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def rank(scores: np.ndarray, top_n: int | None = None) -> list[int]:
    """Indices by descending score; ties keep input order. `top_n` cuts the list."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [int(i) for i in order[: top_n if top_n is not None else len(order)]]
