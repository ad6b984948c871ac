"""Rerank routes, in the shapes their clients send and read.

- `POST /v1/rerank`: Cohere v1 and Jina (`query`, `documents` as strings or `{text, ...}`
  objects with optional `rank_fields`, `top_n`, `return_documents`). The response carries
  Cohere's `id`/`meta` and Jina's `model`/`usage`; documents come back as `{"text": ...}` (or as
  the object that was sent).
- `POST /v2/rerank`: Cohere v2 (`model` required, `documents` strings or objects).
- `POST /rerank`: Infinity's shape (`document` as a plain string, `object: "rerank"`), or TEI's
  (`texts` in, a bare `[{index, score, text?}]` list out) when the body has `texts`.
- `POST /api/rerank`: the n8n Ollama rerank node (`model`, `query`, `documents`, `top_k`).
Results are sorted by relevance, most relevant first, and cut to top_n / top_k. On every route
`relevance_score` (TEI: `score`) is in [0, 1], in the raw score's order: sigmoid of the logit for
cross-encoders, (MaxSim / query vectors + 1) / 2 for ColBERT models, (cosine + 1) / 2 for
embedders; `raw_scores: true` returns the raw logit, MaxSim or cosine instead.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post

from gateway.api.disconnect import unless_disconnected
from gateway.api.ollama import keep_alive_seconds
from gateway.api.responses import with_truncated
from gateway.core import Gateway
from gateway.errors import InvalidRequest
from gateway.service import RerankRequest, RerankResult

Document = str | dict[str, Any]


class CohereBody(msgspec.Struct):
    query: str
    documents: list[Document]
    model: str | None = None
    top_n: int | None = None
    return_documents: bool = False
    rank_fields: list[str] | None = None
    max_chunks_per_doc: int | None = None
    max_tokens_per_doc: int | None = None
    raw_scores: bool = False
    truncate: bool = True


class OllamaRerankBody(msgspec.Struct):
    model: str
    query: str
    documents: list[str]
    top_k: int | None = None
    top_n: int | None = None
    keep_alive: float | str | None = None


class InfinityBody(msgspec.Struct):
    query: str
    documents: list[Document] | None = None
    texts: list[str] | None = None  # TEI
    model: str | None = None
    top_n: int | None = None
    return_documents: bool = False
    return_text: bool = False  # TEI
    raw_scores: bool = False
    truncate: bool = True


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
    return (result.raw if raw else result.relevance).tolist()


async def ranked(
    gw: Gateway,
    request: Request,
    *,
    model: str | None,
    query: str,
    texts: list[str],
    top_n: int | None,
    raw_scores: bool = False,
    truncate: bool = True,
    keep_alive: float | None = None,
    documents_param: str = "documents",
) -> RerankResult:
    work = gw.service.rerank(
        RerankRequest(
            model=model or default_rerank_model(gw),
            query=query,
            documents=texts,
            top_n=top_n,
            truncate=truncate,
            raw_scores=raw_scores,
            keep_alive=keep_alive,
            documents_param=documents_param,
        )
    )
    return await unless_disconnected(request, work)


def default_rerank_model(gw: Gateway) -> str:
    """For requests that name no model (Cohere v1 allows it): the registry's reranker if it is
    pulled, else the default embedding model, which ranks by cosine."""
    preferred = gw.registry.models[gw.registry.default_rerank_model]
    return preferred.name if gw.store.is_present(preferred) else gw.registry.default_model


def cohere_response(
    result: RerankResult, body: CohereBody, model: str, api_version: str
) -> dict[str, Any]:
    scores = scores_of(result, body.raw_scores)
    results = []
    for index in result.order:
        row: dict[str, Any] = {"index": index, "relevance_score": scores[index]}
        if body.return_documents:
            row["document"] = returned_document(body.documents[index])
        results.append(row)
    return {
        "id": str(uuid.uuid4()),
        "results": results,
        "model": model,
        "usage": {"total_tokens": result.tokens, "prompt_tokens": result.tokens},
        "meta": {
            "api_version": {"version": api_version},
            "billed_units": {"search_units": 1, "input_tokens": result.tokens},
        },
    }


class RerankController(Controller):
    path = "/"
    tags = ["Rerank"]

    @post(["/v1/rerank"], status_code=200, summary="Rerank (Cohere v1 / Jina)")
    async def cohere_v1(
        self, data: CohereBody, gw: Gateway, request: Request
    ) -> Response[dict[str, Any]]:
        return await self._cohere(data, gw, request, "1")

    @post(["/v2/rerank"], status_code=200, summary="Rerank (Cohere v2)")
    async def cohere_v2(
        self, data: CohereBody, gw: Gateway, request: Request
    ) -> Response[dict[str, Any]]:
        if not data.model:
            raise InvalidRequest("model is required", param="model")
        return await self._cohere(data, gw, request, "2")

    async def _cohere(
        self, data: CohereBody, gw: Gateway, request: Request, version: str
    ) -> Response[dict[str, Any]]:
        result = await ranked(
            gw,
            request,
            model=data.model,
            query=data.query,
            texts=document_texts(data.documents, data.rank_fields),
            top_n=data.top_n,
            raw_scores=data.raw_scores,
            truncate=data.truncate,
        )
        body = cohere_response(result, data, data.model or result.spec.name, version)
        return with_truncated(body, result.truncated)

    @post("/rerank", status_code=200, summary="Rerank (Infinity, or TEI when `texts` is sent)")
    async def infinity(self, data: InfinityBody, gw: Gateway, request: Request) -> Any:
        if (data.texts is None) == (data.documents is None):
            raise InvalidRequest("send either documents (Infinity) or texts (TEI)", param="texts")
        texts = document_texts(list(data.texts or data.documents or []), None)
        result = await ranked(
            gw,
            request,
            model=data.model,
            query=data.query,
            texts=texts,
            top_n=data.top_n,
            raw_scores=data.raw_scores,
            truncate=data.truncate,
            documents_param="texts" if data.texts is not None else "documents",
        )
        scores = scores_of(result, data.raw_scores)
        if data.texts is not None:  # TEI: a bare list
            return with_truncated(
                [
                    {
                        "index": i,
                        "score": scores[i],
                        **({"text": texts[i]} if data.return_text else {}),
                    }
                    for i in result.order
                ],
                result.truncated,
            )
        body = {
            "object": "rerank",
            "id": f"infinity-{uuid.uuid4()}",
            "created": int(time.time()),
            "model": data.model or result.spec.name,
            "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
            "results": [
                {
                    "index": i,
                    "relevance_score": scores[i],
                    **({"document": texts[i]} if data.return_documents else {}),
                }
                for i in result.order
            ],
        }
        return with_truncated(body, result.truncated)

    @post("/api/rerank", status_code=200, summary="Rerank (the n8n Ollama rerank node's shape)")
    async def ollama(
        self, data: OllamaRerankBody, gw: Gateway, request: Request
    ) -> Response[dict[str, Any]]:
        field, top_k = ("top_k", data.top_k) if data.top_k is not None else ("top_n", data.top_n)
        if top_k is not None and top_k < 1:  # named as the client sent it
            raise InvalidRequest(f"{field} must be at least 1", param=field)
        result = await ranked(
            gw,
            request,
            model=data.model,
            query=data.query,
            texts=data.documents,
            top_n=top_k,
            keep_alive=keep_alive_seconds(data.keep_alive),
        )
        scores = result.relevance.tolist()
        body = {
            "model": data.model,
            "results": [
                {"index": i, "document": data.documents[i], "relevance_score": scores[i]}
                for i in result.order
            ],
        }
        return with_truncated(body, result.truncated)
