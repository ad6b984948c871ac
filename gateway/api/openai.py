"""OpenAI's API: /v1/embeddings (float or base64, dimensions) and /v1/models.

The openai SDKs ask for base64 unless told otherwise; base64 here is the little-endian float32
bytes of each vector, straight from the result buffer. Extensions beyond OpenAI: `input_type`
or `task` picks a task prefix; `input` may mix Jina-style `{"text"}` and `{"image"}` objects for
image models; late-interaction (ColBERT) models answer one matrix per input with its `shape`.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, ClassVar, Literal

import msgspec
import numpy as np
from litestar import Controller, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from gateway.api.deps import AnyRequest, provide
from gateway.api.disconnect import Receive, unless_disconnected
from gateway.api.errors import OPENAI_ERRORS
from gateway.api.openapi_inputs import NO_EMPTY_LIST, NOT_EMPTY, BodyContract, integer_or_null
from gateway.api.responses import embedded, float_json
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.inputs import EmbedInput, ImageInput, TextInput
from gateway.services import EmbeddingService, EmbedRequest, EmbedResult, ModelAdmin, Services
from gateway.services.types import named_model
from gateway.token_ids import DECODER, token_rows

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


class EmbeddingsBody(msgspec.Struct):
    model: str
    # Strings, {"text"}/{"image"} objects, or tiktoken ids (int[] or int[][]); checked by hand.
    input: str | list[Any]
    encoding_format: str | None = None
    # Any JSON scalar, so that 12.5 or "64" gets the model's range in its 400 (the lax
    # decoder would turn "64" into 64 otherwise).
    dimensions: int | float | str | bool | None = None
    user: str | None = None
    # Gateway extensions: the task (prefix) to embed with, and whether to cut long inputs.
    input_type: str | None = None
    task: str | None = None
    truncate: bool | None = None
    # Infinity's field: what bare strings are ("text" or "image").
    modality: str | None = None

    contract: ClassVar[BodyContract] = BodyContract(
        {
            "model": NOT_EMPTY,
            "input": NO_EMPTY_LIST,
            "dimensions": integer_or_null(1),
            "task": NOT_EMPTY,
            "modality": NOT_EMPTY,
        }
    )


class EmbeddingObject(msgspec.Struct, omit_defaults=True):
    """One input's embedding.

    A vector is `[dim]` floats, or base64 of its little-endian float32 bytes. A late-interaction
    model's output is a matrix, one row per token vector: `[tokens][dim]` floats, or base64 of
    the row-major little-endian float32 bytes, with `shape` ([tokens, dim]) saying how to
    reshape it; vectors have no `shape`. (One type for both: msgspec, and so the OpenAPI
    document, cannot describe a union of two list types.)
    """

    index: int
    embedding: list[float | list[float]] | str
    object: Literal["embedding"]
    shape: list[int] | None = None


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
    # Extension: the advertised Matryoshka widths (any 1..native width is served).
    dimensions: list[int] | None = None


class ModelList(msgspec.Struct):
    data: list[ModelObject]
    object: str = "list"


async def inputs_of(raw: str | list[Any], model: str, modality: str | None) -> list[EmbedInput]:
    """The request's inputs: strings, Jina-style {"text"} / {"image"} objects, or tiktoken ids
    decoded back to text (gateway.token_ids; the first use loads a vocabulary, off the loop).

    Bare strings are classified by the model (an image model takes URLs and data URLs as
    images) unless Infinity's `modality` field says what they are.
    """
    # "" is one empty text, as Ollama's /v1/embeddings takes it: LangChain's OpenAIEmbeddings
    # sends it to embed a text that has no tokens.
    items = [raw] if isinstance(raw, str) else raw
    if not items:
        raise InvalidRequest("input cannot be an empty list", param="input")
    rows = token_rows(items)
    if rows is not None:
        texts = await asyncio.to_thread(DECODER.decode, model, rows)
        return [TextInput(text) for text in texts]
    inputs: list[EmbedInput] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            inputs.append(_as_modality(item, modality))
        elif isinstance(item, dict) and len(item) == 1 and isinstance(item.get("text"), str):
            inputs.append(TextInput(item["text"]))
        elif isinstance(item, dict) and len(item) == 1 and isinstance(item.get("image"), str):
            inputs.append(ImageInput(item["image"]))
        else:
            raise InvalidRequest(
                f'input[{index}] must be a string, {{"text": ...}} or {{"image": ...}}',
                param="input",
            )
    return inputs


def _as_modality(value: str, modality: str | None) -> EmbedInput:
    if modality is None:
        return value
    if modality == "text":
        return TextInput(value)
    if modality == "image":
        return ImageInput(value)
    raise InvalidRequest(f"modality must be text or image, not {modality!r}", param="modality")


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


def matrix_object(index: int, matrix: np.ndarray, encoding: str) -> EmbeddingObject:
    shape = list(matrix.shape)
    if encoding == "base64":
        raw = np.ascontiguousarray(matrix, dtype="<f4").tobytes()
        encoded = base64.b64encode(raw).decode("ascii")
        return EmbeddingObject(index=index, embedding=encoded, object="embedding", shape=shape)
    return EmbeddingObject(
        index=index, embedding=float_json(matrix), object="embedding", shape=shape
    )


async def embeddings_answer(
    data: EmbeddingsBody, embedding: EmbeddingService, receive: Receive
) -> tuple[EmbeddingsResponse, EmbedResult]:
    """POST /v1/embeddings' answer (the handler's, and the fast lane's)."""
    inputs = await inputs_of(data.input, data.model, data.modality)
    encoding = encoding_of(data.encoding_format)
    work = embedding.embed(
        EmbedRequest(
            model=data.model,
            inputs=inputs,
            task=task_of(data),
            dimensions=data.dimensions,
            truncate=True if data.truncate is None else data.truncate,
            multi_vector=True,
            input_listed=isinstance(data.input, list),
        )
    )
    result = await unless_disconnected(receive, work)
    if result.matrices is not None:
        objects = [matrix_object(i, m, encoding) for i, m in enumerate(result.matrices)]
    else:
        rows: list[Any] = (
            base64_rows(result.vectors)
            if encoding == "base64"
            else [float_json(row) for row in result.vectors]
        )
        objects = [
            EmbeddingObject(index=i, embedding=row, object="embedding")
            for i, row in enumerate(rows)
        ]
    body = EmbeddingsResponse(
        data=objects,
        model=named_model(data.model) or result.spec.name,  # as named, else the one that ran
        usage=Usage(result.prompt_tokens, result.prompt_tokens),
    )
    return body, result


class OpenAIController(Controller):
    path = "/"
    tags = ["OpenAI"]

    @post("/embeddings", status_code=200, summary="Create embeddings (OpenAI-compatible)")
    async def embeddings(
        self,
        data: JSONBody[EmbeddingsBody],
        embedding: NamedDependency[EmbeddingService],
        request: AnyRequest,
    ) -> Response[EmbeddingsResponse]:
        return embedded(*await embeddings_answer(data, embedding, request.receive))

    @get("/models")
    async def list_models(self, models: NamedDependency[ModelAdmin]) -> ModelList:
        return ModelList(
            [
                ModelObject(
                    id=row.info.name,
                    created=int(row.info.modified_at.timestamp()),
                    dimensions=row.info.dimensions,
                )
                for row in await models.available()
            ]
        )

    @get("/models/{model_id:path}")
    async def model(
        self, model_id: FromPath[str], models: NamedDependency[ModelAdmin]
    ) -> ModelObject:
        model_id = model_id.lstrip("/")  # a :path parameter keeps its leading slash
        spec = models.resolve(model_id)
        info = models.info(spec)
        if not info.present:
            raise ModelNotFound(f"The model '{model_id}' does not exist")
        return ModelObject(
            id=info.name,
            created=int(info.modified_at.timestamp()),
            dimensions=info.dimensions,
        )


def openai_routers(services: Services) -> list[Router]:
    """/v1, and the root for Infinity's unprefixed /embeddings and /models."""
    return [
        Router(
            path=path,
            route_handlers=[OpenAIController],
            dependencies={
                "embedding": provide(services.embedding),
                "models": provide(services.models),
            },
            exception_handlers=OPENAI_ERRORS,
        )
        for path in ("/v1", "/")
    ]
