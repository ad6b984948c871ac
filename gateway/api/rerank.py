"""Rerank routes, in the shapes their clients send and read (types: gateway.api.rerank_wire).

- `POST /v1/rerank`: Cohere v1 and Jina (`query`, `documents` as strings or `{text, ...}`
  objects with optional `rank_fields`, `top_n`, `return_documents`). The response carries
  Cohere's `id`/`meta` and Jina's `model`/`usage`; documents come back as `{"text": ...}` (or as
  the object that was sent). `return_documents` left out is Jina's documented default, true,
  except from Cohere's own SDKs (their `X-Fern-SDK-Name` header), which get Cohere v1's
  documented false; other Cohere-shaped callers get documents they may read past (an optional
  field in Cohere's response), where a Jina client would miss them.
- `POST /v2/rerank`: Cohere v2 (`model` required, `documents` strings or objects); documents
  only with `return_documents: true` (left out, Cohere's default: false).
- `POST /rerank`: Infinity's shape (`document` as a plain string, `object: "rerank"`), or TEI's
  (`texts` in, a bare `[{index, score, text?}]` list out) when the body has `texts`.
- `POST /api/rerank`: the n8n Ollama rerank node (`model`, `query`, `documents`, `top_k`).
On Cohere's two routes a long document is read in chunks of the model's length and scored by its
best (gateway.rerank_chunks): v1 reads up to `max_chunks_per_doc` (default 10), v2 up to
`max_tokens_per_doc` tokens (default 4096); the other routes read the model's length, as TEI
and Infinity do.
Results are sorted by relevance, most relevant first, and cut to top_n / top_k. On every route
`relevance_score` (TEI: `score`) is in [0, 1], in the raw score's order: sigmoid of the logit for
cross-encoders, (MaxSim / query vectors + 1) / 2 for ColBERT models, (cosine + 1) / 2 for
embedders, s / (s + q.q) for sparse (SPLADE) models, s their dot product; `raw_scores: true`
returns the raw logit, MaxSim, cosine or dot product instead. (TEI itself refuses any model but
a sequence classifier on /rerank, a SPLADE one included.) Cohere's routes
answer errors in OpenAI's shape (its SDK reads any JSON error body), the others as
{"error": "message"}.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from litestar import Controller, Response, Router, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.api.deps import AnyRequest, provide
from gateway.api.disconnect import unless_disconnected
from gateway.api.errors import OPENAI_ERRORS, TEI_ERRORS
from gateway.api.ollama_wire import keep_alive_seconds
from gateway.api.rerank_wire import (
    ApiVersion,
    BilledUnits,
    CohereBody,
    CohereMeta,
    CohereResponse,
    CohereResult,
    CohereV2Body,
    Document,
    InfinityBody,
    InfinityResponse,
    InfinityResult,
    OllamaRerankBody,
    OllamaRerankResponse,
    OllamaRerankResult,
    RerankUsage,
    TeiResult,
)
from gateway.api.responses import with_truncated
from gateway.api.tei_inputs import check_direction
from gateway.errors import EmptyInput, InvalidRequest
from gateway.services import RerankRequest, RerankResult, RerankService, Services
from gateway.services.types import named_model


def document_texts(documents: list[Document], rank_fields: list[str] | None) -> list[str]:
    """The text each document is ranked by: itself, its `text`, or its rank_fields in order."""
    texts = []
    for index, document in enumerate(documents):
        if isinstance(document, str):
            texts.append(document)
            continue
        fields = rank_fields or ["text"]
        missing = [f for f in fields if not isinstance(document.get(f), str)]
        if missing:
            raise InvalidRequest(
                f"documents[{index}] has no string field {missing[0]!r} to rank by",
                param="documents",
            )
        if rank_fields:
            texts.append("\n".join(f"{field}: {document[field]}" for field in fields))
        else:
            texts.append(document["text"])
    return texts


def returned_document(document: Document) -> dict[str, Any]:
    return {"text": document} if isinstance(document, str) else document


def scores_of(result: RerankResult, raw: bool) -> list[float]:
    scores: list[float] = (result.raw if raw else result.relevance).tolist()
    return scores


async def ranked(rerank: RerankService, request: AnyRequest, query: RerankRequest) -> RerankResult:
    return await unless_disconnected(request.receive, rerank.rerank(query))


COHERE_SDKS = frozenset({"cohere", "cohere-ai"})
# Cohere bills a search unit per query with up to this many documents, a long document counting
# once per chunk it is split into (its pricing page).
DOCUMENTS_PER_SEARCH_UNIT = 100
V1_CHUNKS = 10  # Cohere v1's max_chunks_per_doc when left out
V2_DOCUMENT_TOKENS = 4096  # Cohere v2's max_tokens_per_doc when left out


def documents_by_default(request: AnyRequest, api_version: str) -> bool:
    """`return_documents` where the body leaves it out: Jina's default (true) on /v1/rerank,
    which Jina's clients share with Cohere v1's; Cohere's (false) for Cohere's SDK and on v2."""
    # Cohere's Python SDK names itself "cohere", its JavaScript SDK "cohere-ai".
    from_cohere_sdk = request.headers.get("x-fern-sdk-name", "").lower() in COHERE_SDKS
    return api_version == "1" and not from_cohere_sdk


def search_units(scored: int) -> int:
    """Cohere's `billed_units.search_units` for a request that scored `scored` chunks: one per
    100 or part of it, and at least one."""
    return max(1, -(-scored // DOCUMENTS_PER_SEARCH_UNIT))


def cohere_response(
    result: RerankResult, body: CohereBody, model: str, api_version: str, documents: bool
) -> CohereResponse:
    scores = scores_of(result, body.raw_scores)
    results = [
        CohereResult(index=i, relevance_score=scores[i])
        if not documents
        else CohereResult(
            index=i, relevance_score=scores[i], document=returned_document(body.documents[i])
        )
        for i in result.order
    ]
    return CohereResponse(
        id=str(uuid.uuid4()),
        results=results,
        model=model,
        usage=RerankUsage(total_tokens=result.tokens, prompt_tokens=result.tokens),
        meta=CohereMeta(
            ApiVersion(api_version), BilledUnits(search_units(result.scored), result.tokens)
        ),
    )


class CohereController(Controller):
    path = "/"
    tags = ["Rerank"]

    @post(["/v1/rerank"], status_code=200, summary="Rerank (Cohere v1 / Jina)")
    async def cohere_v1(
        self,
        data: JSONBody[CohereBody],
        rerank: NamedDependency[RerankService],
        request: AnyRequest,
    ) -> Response[CohereResponse]:
        return await self._cohere(data, rerank, request, "1")

    @post(["/v2/rerank"], status_code=200, summary="Rerank (Cohere v2)")
    async def cohere_v2(
        self,
        data: JSONBody[CohereV2Body],
        rerank: NamedDependency[RerankService],
        request: AnyRequest,
    ) -> Response[CohereResponse]:
        if not data.model:
            raise InvalidRequest("model is required", param="model")
        return await self._cohere(data, rerank, request, "2")

    async def _cohere(
        self, data: CohereBody, rerank: RerankService, request: AnyRequest, version: str
    ) -> Response[CohereResponse]:
        for field in ("max_tokens_per_doc", "max_chunks_per_doc"):
            value = getattr(data, field)
            if value is not None and value < 1:
                raise InvalidRequest(f"{field} must be at least 1", param=field)
        # Cohere's defaults: v1 reads 10 chunks of a long document, v2 its first 4096 tokens.
        chunks = data.max_chunks_per_doc or (V1_CHUNKS if version == "1" else None)
        tokens = data.max_tokens_per_doc or (None if version == "1" else V2_DOCUMENT_TOKENS)
        query = RerankRequest(
            model=data.model,
            query=data.query,
            documents=document_texts(data.documents, data.rank_fields),
            top_n=data.top_n,
            truncate=data.truncate,
            raw_scores=data.raw_scores,
            document_tokens=tokens,
            chunks=chunks,
        )
        result = await ranked(rerank, request, query)
        documents = data.return_documents
        if documents is None:
            documents = documents_by_default(request, version)
        model = named_model(data.model) or result.spec.name
        body = cohere_response(result, data, model, version, documents)
        return with_truncated(body, result.truncated, result.query_truncated)


class RerankController(Controller):
    path = "/"
    tags = ["Rerank"]

    @post("/rerank", status_code=200, summary="Rerank (Infinity, or TEI when `texts` is sent)")
    async def infinity(
        self,
        data: JSONBody[InfinityBody],
        rerank: NamedDependency[RerankService],
        request: AnyRequest,
    ) -> Response[InfinityResponse | list[TeiResult]]:
        if (data.texts is None) == (data.documents is None):
            raise InvalidRequest("send either documents (Infinity) or texts (TEI)", param="texts")
        check_direction(data.truncation_direction)
        if data.texts == []:  # as TEI: an empty batch is refused ("Empty"), not ranked
            raise EmptyInput("texts cannot be empty", param="texts")
        texts = document_texts(list(data.texts or data.documents or []), None)
        query = RerankRequest(
            model=data.model,
            query=data.query,
            documents=texts,
            documents_param="texts" if data.texts is not None else "documents",
            top_n=data.top_n,
            truncate=True if data.truncate is None else data.truncate,
            raw_scores=data.raw_scores,
        )
        result = await ranked(rerank, request, query)
        scores = scores_of(result, data.raw_scores)
        if data.texts is not None:  # TEI: a bare list
            rows = [
                TeiResult(i, scores[i], texts[i]) if data.return_text else TeiResult(i, scores[i])
                for i in result.order
            ]
            return with_truncated(rows, result.truncated, result.query_truncated)
        body = InfinityResponse(
            object="rerank",
            id=f"infinity-{uuid.uuid4()}",
            created=int(time.time()),
            model=named_model(data.model) or result.spec.name,
            usage=RerankUsage(total_tokens=result.tokens, prompt_tokens=result.tokens),
            results=[
                InfinityResult(i, scores[i], texts[i])
                if data.return_documents
                else InfinityResult(i, scores[i])
                for i in result.order
            ],
        )
        return with_truncated(body, result.truncated, result.query_truncated)

    @post("/api/rerank", status_code=200, summary="Rerank (the n8n Ollama rerank node's shape)")
    async def ollama(
        self,
        data: JSONBody[OllamaRerankBody],
        rerank: NamedDependency[RerankService],
        request: AnyRequest,
    ) -> Response[OllamaRerankResponse]:
        if not data.model.strip():  # as /api/embed refuses it; the field is required here
            raise InvalidRequest("model is required", param="model")
        field, top_k = ("top_k", data.top_k) if data.top_k is not None else ("top_n", data.top_n)
        if top_k is not None and top_k < 1:  # named as the client sent it
            raise InvalidRequest(f"{field} must be at least 1", param=field)
        query = RerankRequest(
            model=data.model,
            query=data.query,
            documents=data.documents,
            top_n=top_k,
            keep_alive=keep_alive_seconds(data.keep_alive),
        )
        result = await ranked(rerank, request, query)
        scores = result.relevance.tolist()
        body = OllamaRerankResponse(
            model=data.model,
            results=[OllamaRerankResult(i, data.documents[i], scores[i]) for i in result.order],
        )
        return with_truncated(body, result.truncated, result.query_truncated)


# Documented on every rerank answer; none of the wire formats has a field for what was cut.
TRUNCATION_HEADERS = [
    ResponseHeader(
        name="X-Truncated-Inputs",
        documentation_only=True,
        required=False,
        description="Indices of the documents not read to their end (cut to the model's "
        "length, to max_tokens_per_doc, or past max_chunks_per_doc chunks), comma-separated; "
        "absent when none was cut.",
    ),
    ResponseHeader(
        name="X-Truncated-Query",
        documentation_only=True,
        required=False,
        description='"true" when the query was cut to the model\'s query length.',
    ),
]


def rerank_routers(services: Services) -> list[Router]:
    """Cohere's routes with OpenAI-shaped errors; Infinity and n8n's with plain ones, TEI's
    with its own."""
    dependencies = {"rerank": provide(services.rerank)}
    return [
        Router(
            "/",
            route_handlers=[CohereController],
            dependencies=dependencies,
            exception_handlers=OPENAI_ERRORS,
            response_headers=TRUNCATION_HEADERS,
        ),
        Router(
            "/",
            route_handlers=[RerankController],
            dependencies=dependencies,
            exception_handlers=TEI_ERRORS,  # Ollama's shape but for TEI's bodies (`texts`)
            response_headers=TRUNCATION_HEADERS,
        ),
    ]
