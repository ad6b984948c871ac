"""Cohere's embed API: `POST /v1/embed` and `POST /v2/embed`, as the `cohere` SDKs call them.

Request: `texts` (or v2's `inputs` of `{content: [{type: "text", text} | {type: "image_url",
image_url: {url}}]}`, or `images` as data URLs), `model` (v1: optional, the default model),
`input_type` (search_query, search_document, classification, clustering, image) mapped to the
model's task prefixes, `embedding_types`, v2's `output_dimension` (any Matryoshka width), and
`truncate` (END cuts at the end, NONE refuses long inputs; START is not offered).

`embedding_types`, the quantized forms computed from the L2-normalized float vector v:
- float: v; base64 (v2): base64 of v's little-endian float32 bytes, as OpenAI's base64;
- int8: round(v * 127 / max|v|), per vector, so cosine between int8 vectors tracks cosine
  between the floats (Cohere does not publish its own calibration); uint8: int8 + 128;
- ubinary: one bit per dimension (1 where v > 0), packed 8 to a byte, first dimension in the
  high bit (numpy.packbits), so 384 dimensions give 48 bytes; binary: those bytes - 128 (signed).
v1 without `embedding_types` answers `embeddings_floats` (a bare list of vectors); otherwise the
answer is `embeddings_by_type` with one list per type, as Cohere answers.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, ClassVar, Literal

import msgspec
import numpy as np
from litestar import Controller, Request, Response, Router, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.api.deps import provide
from gateway.api.disconnect import Receive, unless_disconnected
from gateway.api.errors import OPENAI_ERRORS
from gateway.api.openai import TASK_SYNONYMS
from gateway.api.openapi_inputs import (
    NO_EMPTY_LIST,
    NOT_EMPTY,
    BodyContract,
    integer_or_null,
    sent,
)
from gateway.api.responses import embedded, float_json
from gateway.encoders.context import MIN_CONTEXT
from gateway.errors import InvalidRequest
from gateway.inputs import EmbedInput, ImageInput, TextInput
from gateway.services import EmbeddingService, EmbedRequest, EmbedResult, Services

EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]
V1_TYPES = ("float", "int8", "uint8", "binary", "ubinary")
V2_TYPES = (*V1_TYPES, "base64")


class CohereEmbedBody(msgspec.Struct):
    texts: list[str] | None = None
    images: list[str] | None = None
    inputs: list[dict[str, Any]] | None = None  # v2: [{content: [{type, text | image_url}]}]
    model: str | None = None
    input_type: str | None = None
    embedding_types: list[str] | None = None
    output_dimension: int | float | str | bool | None = None
    truncate: str | None = None
    max_tokens: int | None = None

    contract: ClassVar[BodyContract] = BodyContract(
        {
            "texts": NO_EMPTY_LIST,
            "images": NO_EMPTY_LIST,
            "inputs": NO_EMPTY_LIST,
            "input_type": NOT_EMPTY,
            "output_dimension": integer_or_null(1),
            "max_tokens": {"minimum": MIN_CONTEXT},
        },
        one_of=(sent("texts"), sent("images"), sent("inputs")),
    )


class CohereEmbedV2Body(CohereEmbedBody):
    """Cohere v2's body: v1's fields, and `model` is required (refused by the route, in
    Cohere's words, when missing or empty)."""

    contract: ClassVar[BodyContract] = BodyContract(
        {**CohereEmbedBody.contract.fields, "model": NOT_EMPTY},
        required=("model",),
        one_of=CohereEmbedBody.contract.one_of,
    )


class EmbeddingsByType(msgspec.Struct, omit_defaults=True):
    """One list per requested embedding type, as Cohere's `embeddings_by_type` answers."""

    float_: list[list[float]] | None = msgspec.field(default=None, name="float")
    int8: list[list[int]] | None = None
    uint8: list[list[int]] | None = None
    binary: list[list[int]] | None = None
    ubinary: list[list[int]] | None = None
    base64: list[str] | None = None


class ApiVersion(msgspec.Struct):
    version: str


class BilledUnits(msgspec.Struct):
    input_tokens: int


class Meta(msgspec.Struct):
    api_version: ApiVersion
    billed_units: BilledUnits


class CohereEmbedResponse(msgspec.Struct):
    id: str
    response_type: str  # embeddings_floats (v1 without types) or embeddings_by_type
    embeddings: list[list[float]] | EmbeddingsByType
    texts: list[str]
    meta: Meta


def quantized(vectors: np.ndarray, kind: str) -> list[Any]:
    """`vectors` [n, d] (unit length) in one of Cohere's embedding types."""
    if kind == "float":
        return float_json(vectors)  # type: ignore[no-any-return]
    if kind == "base64":
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
    if kind in ("int8", "uint8"):
        peak = np.maximum(np.abs(vectors).max(axis=1, keepdims=True), 1e-12)
        signed = np.clip(np.rint(vectors / peak * 127), -128, 127).astype(np.int16)
        return (signed + 128 if kind == "uint8" else signed).tolist()  # type: ignore[no-any-return]
    packed = np.packbits(vectors > 0, axis=1).astype(np.int16)  # ubinary
    return (packed - 128 if kind == "binary" else packed).tolist()  # type: ignore[no-any-return]


def task_of(input_type: str | None) -> str | None:
    if input_type is None or input_type.strip().lower() == "image":
        return None
    task = TASK_SYNONYMS.get(input_type.strip().lower())
    if task is None:
        raise InvalidRequest(
            f"unknown input_type {input_type!r}; use one of search_query, search_document, "
            "classification, clustering, image",
            param="input_type",
        )
    return task


def truncate_of(raw: str | None) -> bool:
    value = (raw or "END").upper()
    if value not in ("END", "NONE"):
        raise InvalidRequest(
            f"truncate must be END or NONE, not {raw!r} (inputs are cut at the end)",
            param="truncate",
        )
    return value == "END"


def max_tokens_of(raw: int | None) -> int | None:
    """Cohere v2's max_tokens: each input's tokens (special tokens counted, as Ollama's num_ctx),
    cut or refused as `truncate` says."""
    if raw is not None and raw < MIN_CONTEXT:
        raise InvalidRequest(f"max_tokens must be at least {MIN_CONTEXT}", param="max_tokens")
    return raw


def types_of(raw: list[str] | None, allowed: tuple[str, ...]) -> list[str]:
    kinds = raw or ["float"]
    for index, kind in enumerate(kinds):
        if kind not in allowed:
            raise InvalidRequest(
                f"embedding_types[{index}] is {kind!r}; use any of {list(allowed)}",
                param="embedding_types",
            )
    return list(dict.fromkeys(kinds))


def inputs_of(body: CohereEmbedBody) -> tuple[list[EmbedInput], str]:
    """The inputs, and the field they came in (for errors that name an item)."""
    given = [f for f in ("texts", "images", "inputs") if getattr(body, f) is not None]
    if len(given) != 1:
        raise InvalidRequest("send exactly one of texts, images or inputs", param="texts")
    field = given[0]
    if field == "texts":
        return [TextInput(text) for text in body.texts or []], field
    if field == "images":
        return [ImageInput(image) for image in body.images or []], field
    inputs: list[EmbedInput] = []
    for index, item in enumerate(body.inputs or []):
        content = item.get("content")
        if not isinstance(content, list) or len(content) != 1 or not isinstance(content[0], dict):
            raise InvalidRequest(
                f"inputs[{index}].content must hold one text or image_url part", param="inputs"
            )
        part = content[0]
        image = part.get("image_url")
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            inputs.append(TextInput(part["text"]))
        elif (
            part.get("type") == "image_url"
            and isinstance(image, dict)
            and isinstance(image.get("url"), str)
        ):
            inputs.append(ImageInput(image["url"]))
        else:
            raise InvalidRequest(
                f"inputs[{index}].content[0] must be {{type: text, text}} or "
                "{type: image_url, image_url: {url}}",
                param="inputs",
            )
    return inputs, field


def response_of(
    result: EmbedResult,
    kinds: list[str],
    inputs: list[EmbedInput],
    *,
    version: str,
    by_type: bool,
) -> CohereEmbedResponse:
    embeddings: list[list[float]] | EmbeddingsByType
    if by_type:
        lists = {kind: quantized(result.vectors, kind) for kind in kinds}
        embeddings = EmbeddingsByType(
            float_=lists.get("float"),
            int8=lists.get("int8"),
            uint8=lists.get("uint8"),
            binary=lists.get("binary"),
            ubinary=lists.get("ubinary"),
            base64=lists.get("base64"),
        )
    else:
        embeddings = float_json(result.vectors)
    return CohereEmbedResponse(
        id=str(uuid.uuid4()),
        response_type="embeddings_by_type" if by_type else "embeddings_floats",
        embeddings=embeddings,
        texts=[x.text for x in inputs if isinstance(x, TextInput)],
        meta=Meta(ApiVersion(version), BilledUnits(result.prompt_tokens)),
    )


async def cohere_v1_answer(
    body: CohereEmbedBody, embedding: EmbeddingService, receive: Receive
) -> tuple[CohereEmbedResponse, EmbedResult]:
    """POST /v1/embed's answer (the handler's, and the fast lane's)."""
    return await _answer(body, embedding, receive, "1")


async def cohere_v2_answer(
    body: CohereEmbedBody, embedding: EmbeddingService, receive: Receive
) -> tuple[CohereEmbedResponse, EmbedResult]:
    """POST /v2/embed's answer: v2 names its model."""
    if not body.model:
        raise InvalidRequest("model is required", param="model")
    return await _answer(body, embedding, receive, "2")


async def _answer(
    body: CohereEmbedBody, embedding: EmbeddingService, receive: Receive, version: str
) -> tuple[CohereEmbedResponse, EmbedResult]:
    inputs, field = inputs_of(body)
    if not inputs:
        raise InvalidRequest(f"{field} must not be empty", param=field)
    kinds = types_of(body.embedding_types, V2_TYPES if version == "2" else V1_TYPES)
    work = embedding.embed(
        EmbedRequest(
            model=body.model or embedding.default_model,
            inputs=inputs,
            task=task_of(body.input_type),
            dimensions=body.output_dimension,
            truncate=truncate_of(body.truncate),
            context_length=max_tokens_of(body.max_tokens),
            dimensions_param="output_dimension",
            input_param=field,
        )
    )
    result = await unless_disconnected(receive, work)
    by_type = version == "2" or body.embedding_types is not None
    return response_of(result, kinds, inputs, version=version, by_type=by_type), result


class CohereEmbedController(Controller):
    path = "/"
    tags = ["Cohere"]

    @post("/v1/embed", status_code=200, summary="Embed (Cohere v1)")
    async def embed_v1(
        self,
        data: JSONBody[CohereEmbedBody],
        embedding: NamedDependency[EmbeddingService],
        request: Request[Any, Any, Any],
    ) -> Response[CohereEmbedResponse]:
        return embedded(*await cohere_v1_answer(data, embedding, request.receive))

    @post("/v2/embed", status_code=200, summary="Embed (Cohere v2)")
    async def embed_v2(
        self,
        data: JSONBody[CohereEmbedV2Body],
        embedding: NamedDependency[EmbeddingService],
        request: Request[Any, Any, Any],
    ) -> Response[CohereEmbedResponse]:
        return embedded(*await cohere_v2_answer(data, embedding, request.receive))


def cohere_embed_router(services: Services) -> Router:
    return Router(
        path="/",
        route_handlers=[CohereEmbedController],
        dependencies={"embedding": provide(services.embedding)},
        exception_handlers=OPENAI_ERRORS,
    )
