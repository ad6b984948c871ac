"""OpenAI's API: /v1/embeddings (float or base64, dimensions) and /v1/models.

The openai SDKs ask for base64 unless told otherwise; base64 here is the little-endian float32
bytes of each vector, straight from the result buffer.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import numpy as np
from litestar import Controller, get, post

from gateway.core import Gateway
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.registry import tagged_name
from gateway.service import EmbedRequest

# input_type / task synonyms used by Cohere, Jina, Voyage and nomic -> registry task names.
TASK_SYNONYMS = {
    "query": "query",
    "search_query": "query",
    "retrieval.query": "query",
    "document": "document",
    "search_document": "document",
    "passage": "document",
    "retrieval.passage": "document",
    "clustering": "clustering",
    "classification": "classification",
}
TOKEN_ARRAY_HINT = (
    "input must be a string or a list of strings; token-id arrays are not accepted because "
    "they come from another model's tokenizer. LangChain users: set "
    "OpenAIEmbeddings(check_embedding_ctx_length=False)"
)


class EmbeddingsBody(msgspec.Struct):
    model: str
    # A list may hold strings, or token ids; checked by hand to give a useful message.
    input: str | list[Any]
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None
    # Gateway extensions: the task (prefix) to embed with, and whether to cut long inputs.
    input_type: str | None = None
    task: str | None = None
    truncate: bool | None = None


class EmbeddingObject(msgspec.Struct):
    index: int
    embedding: list[float] | str
    object: str = "embedding"


class Usage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(msgspec.Struct):
    data: list[EmbeddingObject]
    model: str
    usage: Usage
    object: str = "list"


class ModelObject(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "library"
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelObject]
    object: str = "list"


def texts_of(raw: str | list[Any]) -> list[str]:
    if isinstance(raw, str):
        if not raw:
            raise InvalidRequest("input cannot be an empty string", param="input")
        return [raw]
    if not raw:
        raise InvalidRequest("input cannot be an empty list", param="input")
    for index, item in enumerate(raw):
        if isinstance(item, (int, list)) and not isinstance(item, bool):
            raise InvalidRequest(TOKEN_ARRAY_HINT, param="input")
        if not isinstance(item, str):
            raise InvalidRequest(f"input[{index}] must be a string", param="input")
    return raw


def task_of(body: EmbeddingsBody) -> str | None:
    raw = body.input_type or body.task
    if raw is None:
        return None
    task = TASK_SYNONYMS.get(raw.strip().lower())
    if task is None:
        raise InvalidRequest(
            f"unknown input_type {raw!r}; use one of {sorted(TASK_SYNONYMS)}", param="input_type"
        )
    return task


def encoding_of(raw: str | None) -> str:
    value = (raw or "float").lower()
    if value not in {"float", "base64"}:
        raise InvalidRequest(
            f"Invalid value for 'encoding_format' = {raw}. Supported values: ['float', 'base64'].",
            param="encoding_format",
        )
    return value


def base64_rows(vectors: np.ndarray) -> list[str]:
    little_endian = np.ascontiguousarray(vectors, dtype="<f4")
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in little_endian]


class OpenAIController(Controller):
    path = "/v1"
    tags = ["OpenAI"]

    @post("/embeddings", status_code=200, summary="Create embeddings (OpenAI-compatible)")
    async def embeddings(self, data: EmbeddingsBody, gw: Gateway) -> EmbeddingsResponse:
        texts = texts_of(data.input)
        encoding = encoding_of(data.encoding_format)
        if data.dimensions is not None and data.dimensions < 1:
            raise InvalidRequest("dimensions must be at least 1", param="dimensions")
        result = await gw.service.embed(
            EmbedRequest(
                model=data.model,
                inputs=texts,
                task=task_of(data),
                dimensions=data.dimensions,
                truncate=True if data.truncate is None else data.truncate,
            )
        )
        rows: list[Any] = (
            base64_rows(result.vectors) if encoding == "base64" else result.vectors.tolist()
        )
        return EmbeddingsResponse(
            data=[EmbeddingObject(index=i, embedding=row) for i, row in enumerate(rows)],
            model=data.model,
            usage=Usage(result.prompt_tokens, result.prompt_tokens),
        )

    @get("/models")
    async def models(self, gw: Gateway) -> ModelList:
        return ModelList(
            [
                ModelObject(id=info.name, created=int(info.modified_at.timestamp()))
                for info in gw.catalog.available()
            ]
        )

    @get("/models/{model_id:path}")
    async def model(self, model_id: str, gw: Gateway) -> ModelObject:
        model_id = model_id.lstrip("/")  # a :path parameter keeps its leading slash
        spec = gw.service.resolve(model_id).spec
        info = gw.catalog.info(spec)
        if not info.present:
            raise ModelNotFound(f"The model '{model_id}' does not exist")
        return ModelObject(id=tagged_name(spec.name), created=int(info.modified_at.timestamp()))
