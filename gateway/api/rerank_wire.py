"""Wire types of the rerank routes: Cohere v1/v2 and Jina, Infinity, TEI, the n8n Ollama node."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, UnsetType

from gateway.api.openapi_inputs import (
    AT_LEAST_ONE,
    NO_EMPTY_LIST,
    NOT_EMPTY,
    BodyContract,
    sent,
)

Document = str | dict[str, Any]


class CohereBody(msgspec.Struct):
    query: str
    documents: list[Document]
    model: str | None = None
    top_n: int | None = None
    # Absent: the route's default (documents_by_default in gateway.api.rerank).
    return_documents: bool | None = None
    rank_fields: list[str] | None = None
    # Cohere v1 (default 10): a long document is read in at most this many windows of the
    # model's length, and scored by its best (v2: as many as max_tokens_per_doc fills).
    max_chunks_per_doc: int | None = None
    # Cohere v2 (default 4096): each document cut to this many of its tokens before ranking.
    max_tokens_per_doc: int | None = None
    raw_scores: bool = False
    truncate: bool = True

    contract: ClassVar[BodyContract] = BodyContract(
        {
            "query": NOT_EMPTY,
            "top_n": AT_LEAST_ONE,
            "max_chunks_per_doc": {
                **AT_LEAST_ONE,
                "description": "A document longer than the model reads at once is split into "
                "chunks of that length, each scored with the query, the document by its best; "
                "at most this many chunks are read (default 10 on /v1/rerank; on /v2/rerank "
                "as many as max_tokens_per_doc fills). 1 reads the first chunk only.",
            },
            "max_tokens_per_doc": {
                **AT_LEAST_ONE,
                "description": "Each document is cut after this many of its tokens, counted by "
                "the model's tokenizer, before it is split into chunks (default 4096 on "
                "/v2/rerank; none on /v1/rerank).",
            },
        }
    )


class CohereV2Body(CohereBody):
    """Cohere v2's body: v1's fields, and `model` is required (refused by the route, in
    Cohere's words, when missing or empty)."""

    contract: ClassVar[BodyContract] = BodyContract(
        {**CohereBody.contract.fields, "model": NOT_EMPTY}, required=("model",)
    )


class OllamaRerankBody(msgspec.Struct):
    model: str
    query: str
    documents: list[str]
    top_k: int | None = None
    top_n: int | None = None
    keep_alive: float | str | None = None

    contract: ClassVar[BodyContract] = BodyContract(
        {
            "model": NOT_EMPTY,
            "query": NOT_EMPTY,
            "keep_alive": NOT_EMPTY,
            "top_k": AT_LEAST_ONE,
            "top_n": AT_LEAST_ONE,
        }
    )


class InfinityBody(msgspec.Struct):
    query: str
    documents: list[Document] | None = None
    texts: list[str] | None = None  # TEI
    model: str | None = None
    top_n: int | None = None
    return_documents: bool = False
    return_text: bool = False  # TEI
    raw_scores: bool = False
    truncate: bool | None = None  # TEI's Option<bool>: null (or absent) cuts long inputs
    truncation_direction: str = "right"  # TEI; only "right" is served

    contract: ClassVar[BodyContract] = BodyContract(
        {
            "query": NOT_EMPTY,
            "texts": NO_EMPTY_LIST,
            "top_n": AT_LEAST_ONE,
            "truncation_direction": NOT_EMPTY,
        },
        one_of=(sent("documents"), sent("texts")),  # Infinity's body or TEI's
    )


class RerankUsage(msgspec.Struct):
    total_tokens: int
    prompt_tokens: int


class CohereResult(msgspec.Struct):
    index: int
    relevance_score: float
    # With return_documents: {"text": ...} for a string, else the object that was sent.
    document: dict[str, Any] | UnsetType = UNSET


class ApiVersion(msgspec.Struct):
    version: str


class BilledUnits(msgspec.Struct):
    search_units: int
    input_tokens: int


class CohereMeta(msgspec.Struct):
    api_version: ApiVersion
    billed_units: BilledUnits


class CohereResponse(msgspec.Struct):
    """Cohere's shape (id, results, meta) with Jina's model and usage."""

    id: str
    results: list[CohereResult]
    model: str
    usage: RerankUsage
    meta: CohereMeta


class InfinityResult(msgspec.Struct):
    index: int
    relevance_score: float
    document: str | UnsetType = UNSET  # with return_documents


class InfinityResponse(msgspec.Struct):
    object: Literal["rerank"]
    id: str
    created: int
    model: str
    usage: RerankUsage
    results: list[InfinityResult]


class TeiResult(msgspec.Struct):
    index: int
    score: float
    text: str | UnsetType = UNSET  # with return_text


class OllamaRerankResult(msgspec.Struct):
    index: int
    document: str
    relevance_score: float


class OllamaRerankResponse(msgspec.Struct):
    model: str
    results: list[OllamaRerankResult]
