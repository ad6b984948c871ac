"""Rerank one query against many documents with whichever encoder a model has.

The entry point for the rerank routes: they resolve the model, hold it through the manager, and
call `rerank(encoder, batcher.submit, query, documents)`. Tokenizing runs in worker threads and
inference goes through the model's Batcher, so rerank requests share batches with embedding
requests; nothing heavy runs on the event loop.

- late interaction: the query is encoded once (task "query"), the documents in the same submit
  (task "document"); MaxSim scores them; relevance = (MaxSim / query vectors + 1) / 2.
- cross-encoder: one (query, document) pair per document; relevance = sigmoid(logit).
- text embedder: query and documents embedded with their task prefixes; relevance =
  (cosine + 1) / 2. Every relevance is in [0, 1] (gateway.scoring); raw is kept beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.encoders.base import Encoder, Item
from gateway.encoders.cross import CrossEncoder
from gateway.encoders.late import LateInteractionEncoder
from gateway.encoders.text import TextEncoder, postprocess
from gateway.errors import InputTooLong, InvalidRequest, UnsupportedInput
from gateway.scoring import (
    ScoreScale,
    cosine_scores,
    maxsim,
    rank,
    relevance_from_cosine,
    relevance_from_logits,
    relevance_from_maxsim,
)

Submit = Callable[[Sequence[Item]], Awaitable[list[np.ndarray]]]


@dataclass(frozen=True)
class RerankScores:
    """Scores in the documents' input order."""

    raw: np.ndarray  # MaxSim, logit or cosine
    relevance: np.ndarray  # what a rerank API returns as relevance_score
    tokens: int  # tokens read from the inputs (usage), [MASK] expansion not counted
    truncated: list[int]  # indices of documents that were cut to fit

    def top(self, top_n: int | None = None) -> list[int]:
        """Document indices, most relevant first (ties keep input order)."""
        return rank(self.relevance, top_n)


async def rerank(
    encoder: Encoder,
    submit: Submit,
    query: str,
    documents: Sequence[str],
    *,
    truncate: bool = True,
    scale: ScoreScale = "normalized",
    documents_param: str = "documents",
) -> RerankScores:
    """`documents_param` is the documents' wire field ("texts" for TEI), for error messages."""
    if not documents:
        raise InvalidRequest(f"{documents_param} must not be empty", param=documents_param)
    cuts = _CutPolicy(truncate, documents_param)
    if isinstance(encoder, LateInteractionEncoder):
        return await _late(encoder, submit, query, documents, cuts, scale)
    if isinstance(encoder, CrossEncoder):
        return await _cross(encoder, submit, query, documents, cuts, scale)
    if isinstance(encoder, TextEncoder):
        return await _dense(encoder, submit, query, documents, cuts, scale)
    raise UnsupportedInput(f"model '{encoder.spec.name}' cannot rerank text", param="model")


async def _late(
    encoder: LateInteractionEncoder,
    submit: Submit,
    query: str,
    documents: Sequence[str],
    cuts: _CutPolicy,
    scale: ScoreScale,
) -> RerankScores:
    (q_item,) = await asyncio.to_thread(encoder.tokenize, [query], task="query")
    d_items = await asyncio.to_thread(encoder.tokenize, documents, task="document")
    cuts.check(q_item.truncated, d_items, f"{encoder.spec.document_length} tokens")
    # One submit: the Batcher length-sorts the query among the documents and splits by budget.
    vectors = await submit([q_item, *d_items])
    q_vectors, d_vectors = vectors[0], vectors[1:]
    raw = await asyncio.to_thread(maxsim, q_vectors, d_vectors)
    return RerankScores(
        raw=raw,
        relevance=relevance_from_maxsim(raw, len(q_vectors), scale),
        tokens=q_item.text_tokens + sum(item.text_tokens for item in d_items),
        truncated=[i for i, item in enumerate(d_items) if item.truncated],
    )


async def _cross(
    encoder: CrossEncoder,
    submit: Submit,
    query: str,
    documents: Sequence[str],
    cuts: _CutPolicy,
    scale: ScoreScale,
) -> RerankScores:
    items = await asyncio.to_thread(encoder.tokenize_pairs, query, documents)
    cuts.check(False, items, f"{encoder.spec.max_tokens} tokens with the query")
    raw = np.concatenate(await submit(items)).astype(np.float64)
    return RerankScores(
        raw=raw,
        relevance=relevance_from_logits(raw, scale),
        tokens=sum(item.length for item in items),
        truncated=[i for i, item in enumerate(items) if item.truncated],
    )


async def _dense(
    encoder: TextEncoder,
    submit: Submit,
    query: str,
    documents: Sequence[str],
    cuts: _CutPolicy,
    scale: ScoreScale,
) -> RerankScores:
    spec = encoder.spec
    tasks = spec.tasks
    q_items = await asyncio.to_thread(
        encoder.tokenize, [query], task="query" if "query" in tasks else None
    )
    d_items = await asyncio.to_thread(
        encoder.tokenize, documents, task="document" if "document" in tasks else None
    )
    cuts.check(q_items[0].truncated, d_items, f"{spec.max_tokens} tokens")
    pooled = await submit([*q_items, *d_items])
    vectors = postprocess(
        np.stack(pooled), layer_norm=spec.layer_norm, dimensions=spec.dim, normalize=True
    )
    raw = cosine_scores(vectors[0], vectors[1:])
    return RerankScores(
        raw=raw,
        relevance=relevance_from_cosine(raw, scale),
        tokens=sum(item.length for item in [*q_items, *d_items]),
        truncated=[i for i, item in enumerate(d_items) if item.truncated],
    )


@dataclass(frozen=True)
class _CutPolicy:
    """With truncate off, an input the model would cut is an error naming it (as /api/embed)."""

    truncate: bool
    documents_param: str

    def check(self, query_cut: bool, documents: Sequence[Any], limit: str) -> None:
        if self.truncate:
            return
        if query_cut:
            raise InputTooLong(
                "query is longer than the model's query length; send truncate: true to cut it",
                param="query",
            )
        cut = [i for i, item in enumerate(documents) if item.truncated]
        if cut:
            raise InputTooLong(
                f"{self.documents_param}[{cut[0]}] is longer than {limit}; "
                "send truncate: true to cut it",
                param=self.documents_param,
            )
