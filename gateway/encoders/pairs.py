"""The pair-scoring side of the encoder contract: one query against many documents.

Encoders that can rank (ColBERT by MaxSim, cross-encoders by their logit, any text embedder by
cosine) prepare the query and documents as one list of items, so the Batcher runs them in one
submit, and score the raw outputs. `gateway.rerank` drives it; it never asks which kind it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from tokenizers import Tokenizer

from gateway.scoring import ScoreScale

__all__ = ["PairScorer", "PreparedPairs", "ScoreScale"]

ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class PreparedPairs(Generic[ItemT]):
    items: list[ItemT]  # everything to run, in one submit
    query_truncated: bool
    documents_truncated: list[int]  # indices of documents cut to fit
    tokens: int  # tokens read from the inputs (usage)
    limit: str  # what a document was cut to, for the error when truncation is off


class PairScorer(Protocol):
    """What a model that can rank documents offers (the rerank service's view of it)."""

    @property
    def document_tokenizer(self) -> Tokenizer:
        """The tokenizer documents are read with (a request's per-document token cap counts
        its tokens)."""
        ...

    def document_window(self, query: str) -> int:
        """How many of a document's own tokens (special tokens not counted) one run reads
        beside `query`: the length a long document is split at (gateway.rerank_chunks)."""
        ...

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> PreparedPairs[Any]: ...

    def run(self, items: Sequence[Any]) -> list[np.ndarray]: ...

    def score_pairs(
        self, raw: Sequence[np.ndarray], scale: ScoreScale
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw scores, relevance), in the documents' order."""
        ...
