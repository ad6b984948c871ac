"""Rerank one query against many documents with whatever pair scorer a model offers.

`rerank(scorer, submit, query, documents)`: the scorer prepares the query and documents as one
list of items (in a worker thread), the model's Batcher runs them in one submit (so rerank
requests share batches with embedding requests), and the scorer turns the raw outputs into
scores. Which scores is the encoder's business (gateway.encoders: MaxSim for ColBERT, the
sigmoid of a logit for cross-encoders, cosine for embedders); this module never asks.

`chunks` says how much of a long document is read: 1 (TEI, Infinity, the n8n node) its first
window, as the model cuts it; more (Cohere v1's max_chunks_per_doc) or None (Cohere v2, up to
max_tokens_per_doc) that many windows, each scored, the document by its best (rerank_chunks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from gateway.encoders.pairs import PairScorer, PreparedPairs
from gateway.errors import InputTooLong, InvalidRequest
from gateway.rerank_chunks import MAX_CHUNKS_PER_REQUEST, Chunks, best_of_chunks, split_documents
from gateway.scoring import ScoreScale, rank

Submit = Callable[[Sequence[Any]], Awaitable[list[np.ndarray]]]


@dataclass(frozen=True)
class RerankScores:
    """Scores in the documents' input order."""

    raw: np.ndarray  # MaxSim, logit or cosine
    relevance: np.ndarray  # what a rerank API returns as relevance_score
    tokens: int  # tokens read from the inputs (usage), [MASK] expansion not counted
    truncated: list[int]  # indices of documents that were cut to fit
    query_truncated: bool = False
    # Query-document pairs the model scored: a document's chunks, or the document (billing).
    scored: int = 0

    def top(self, top_n: int | None = None) -> list[int]:
        """Document indices, most relevant first (ties keep input order). By the raw score:
        relevance keeps its order but a sigmoid rounds logits past ~37 to 1.0, a false tie."""
        return rank(self.raw, top_n)


async def rerank(
    scorer: PairScorer,
    submit: Submit,
    query: str,
    documents: Sequence[str],
    *,
    truncate: bool = True,
    scale: ScoreScale = "normalized",
    documents_param: str = "documents",
    document_tokens: int | None = None,
    chunks: int | None = 1,
) -> RerankScores:
    """`documents_param` is the documents' wire field ("texts" for TEI), for error messages.
    `document_tokens` (Cohere's max_tokens_per_doc) cuts each document to that many of its own
    tokens first; a document it cuts is reported as truncated. `chunks`: the windows of a long
    document read, at most (None: all); a document with text past them is reported as
    truncated, or refused without `truncate`."""
    if not documents:
        raise InvalidRequest(f"{documents_param} must not be empty", param=documents_param)

    def prepare() -> tuple[PreparedPairs[Any], list[int], Chunks | None]:
        tokenizer = scorer.document_tokenizer
        if chunks == 1:  # the first window only: the model's own cut, as before chunking
            texts, cut = cut_to_tokens(tokenizer, documents, document_tokens)
            return scorer.prepare_pairs(query, texts), cut, None
        window = scorer.document_window(query)
        split = split_documents(tokenizer, documents, window, chunks, document_tokens)
        _refuse_split(split, len(documents), truncate, chunks, window, documents_param)
        return scorer.prepare_pairs(query, split.texts), [*split.capped, *split.unread], split

    pairs, cut, split = await asyncio.to_thread(prepare)
    # The documents the model cut (a chunk that still overflowed cuts its document).
    model_cut = pairs.documents_truncated
    if split is not None:
        model_cut = sorted({int(split.owners[i]) for i in model_cut})
    _refuse_cut(truncate, pairs, documents_param, model_cut)
    outputs = await submit(pairs.items)
    raw, relevance = await asyncio.to_thread(scorer.score_pairs, outputs, scale)
    if split is not None:
        raw, relevance = best_of_chunks(split.owners, raw, relevance)
    truncated = sorted({*cut, *model_cut})
    scored = len(documents) if split is None else len(split.texts)
    return RerankScores(raw, relevance, pairs.tokens, truncated, pairs.query_truncated, scored)


def _refuse_split(
    split: Chunks, documents: int, truncate: bool, chunks: int | None, window: int, param: str
) -> None:
    """Too many chunks for one request; without `truncate`, a document longer than its chunks."""
    limit = max(MAX_CHUNKS_PER_REQUEST, documents)
    if len(split.texts) > limit:
        raise InvalidRequest(
            f"the {param} make {len(split.texts)} chunks of the model's length, more than the "
            f"{limit} one request may score; send fewer or shorter {param}, or a lower "
            "max_chunks_per_doc or max_tokens_per_doc",
            param=param,
        )
    if split.unread and not truncate:
        raise InputTooLong(
            f"{param}[{split.unread[0]}] is longer than {chunks} chunks of {window} tokens "
            "(max_chunks_per_doc); send truncate: true to read its first chunks only",
            param=param,
        )


def cut_to_tokens(
    tokenizer: Tokenizer, documents: Sequence[str], limit: int | None
) -> tuple[list[str], list[int]]:
    """`documents` with each cut after its first `limit` tokens (special tokens not counted),
    at the character where that token ends; and the indices of those cut. Only a limit below
    the model's own length changes anything: the tokenizer stops there anyway."""
    # Cohere's default (4096) is past every model's length: no second tokenization for it.
    truncation = tokenizer.truncation
    if limit is None or (truncation is not None and limit >= truncation["max_length"]):
        return list(documents), []
    texts, cut = list(documents), []
    for index, encoding in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False)):
        if len(encoding.ids) > limit:
            texts[index] = texts[index][: encoding.offsets[limit - 1][1]]
            cut.append(index)
    return texts, cut


def _refuse_cut(
    truncate: bool, pairs: PreparedPairs[Any], documents_param: str, cut: list[int]
) -> None:
    """With truncate off, an input the model would cut is an error naming it (as /api/embed);
    `cut`: the documents (not chunks) it would cut."""
    if truncate:
        return
    if pairs.query_truncated:
        raise InputTooLong(
            "query is longer than the model's query length; send truncate: true to cut it",
            param="query",
        )
    if cut:
        raise InputTooLong(
            f"{documents_param}[{cut[0]}] is longer than {pairs.limit}; "
            "send truncate: true to cut it",
            param=documents_param,
        )
