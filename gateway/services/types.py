"""The request and result types that flow between the API layer and the inference services."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.inputs import EmbedInput
from gateway.specs import ModelSpec


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    inputs: Sequence[EmbedInput]
    task: str | None = None
    # Checked against the model (1..native width); a float is refused with the range.
    dimensions: int | float | str | bool | None = None
    # Ollama's /api/embed: an integer width <= 0 or >= the native one means the native one.
    ignore_unusable_dimensions: bool = False
    truncate: bool = True
    # Ollama's options.num_ctx: a context shorter than the model's (never longer).
    context_length: int | None = None
    keep_alive: float | None = None
    # Ollama's legacy /api/embeddings returns vectors without L2 normalization.
    normalize: bool = True
    # The route can carry one matrix per input (late-interaction models).
    multi_vector: bool = False
    # The wire fields, for error messages that name what the client sent: "dim" and "inputs"
    # or "contents" on native routes; a single string (not a list) is named without an index.
    dimensions_param: str = "dimensions"
    input_param: str = "input"
    input_listed: bool = True

    def item(self, index: int) -> str:
        """How an error names input `index`: input[3], contents[3], or content."""
        return f"{self.input_param}[{index}]" if self.input_listed else self.input_param


@dataclass
class EmbedResult:
    spec: ModelSpec
    vectors: np.ndarray  # [inputs, dimensions]; empty for multi-vector results
    token_counts: list[int]
    truncated: list[int] = field(default_factory=list)
    load_seconds: float = 0.0
    total_seconds: float = 0.0
    matrices: list[np.ndarray] | None = None  # late-interaction models: [tokens, dim] each

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


# The model name Infinity's generated client sends when its caller names none (the default of
# its RerankInput and OpenAIEmbeddingInput): the route's default model is meant.
UNNAMED_MODEL = "default/not-specified"


def named_model(model: str | None) -> str | None:
    """`model` as the client named it; None where it named none (Infinity's placeholder)."""
    return None if model == UNNAMED_MODEL else model


@dataclass(frozen=True)
class RerankRequest:
    model: str | None  # None or empty: the default model of the route
    query: str
    documents: Sequence[str]
    top_n: int | None = None
    truncate: bool = True
    raw_scores: bool = False
    keep_alive: float | None = None
    # The wire field of the documents ("texts" on TEI's /rerank), for error messages.
    documents_param: str = "documents"
    # Cohere's max_tokens_per_doc: each document cut to this many of its tokens first.
    document_tokens: int | None = None
    # How many windows of the model's length a long document is read in, each scored, the
    # document by its best (Cohere's max_chunks_per_doc); None: all. 1: the first only.
    chunks: int | None = 1


@dataclass
class RerankResult:
    spec: ModelSpec
    order: list[int]  # document indices, most relevant first, cut to top_n
    relevance: np.ndarray  # in the documents' input order
    raw: np.ndarray
    tokens: int
    truncated: list[int]
    total_seconds: float
    query_truncated: bool = False
    scored: int = 0  # query-document pairs scored: chunks of long documents count each
