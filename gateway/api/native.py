"""Routes of the server this gateway replaces (nomic-api-rs), on the registry's default models.

Text: `POST /embed` `{"input", "dim"}` -> `{"embedding", "tokens", "time_ms"}`, `POST /batch`
`{"inputs", "dim"}` -> `{"embeddings", "tokens", "time_ms"}` (also under /txt/). Images, on the
default image model: `POST /img/embed` `{"content", "dim"}`, `POST /img/batch`
`{"contents", "dim"}`, `POST /img/stats` `{"content", "averaging_method"}`, where content is a URL,
a data URL or raw base64. `GET /health`, `GET /info`. Its users switch by changing the URL only.

nomic-api-rs serves one text and one image model and has no `model` field; here, as on TEI's
routes, the gateway's extension field `model` names another registry model, and a name the
registry does not know is a 404, never a quiet fall back to the default.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, ClassVar

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.api.auth import PUBLIC
from gateway.api.deps import AnyRequest, provide
from gateway.api.disconnect import Receive, unless_disconnected
from gateway.api.errors import OLLAMA_ERRORS
from gateway.api.openapi_inputs import NOT_EMPTY, BodyContract, integer_or_null
from gateway.api.probes import StatusView
from gateway.api.responses import embedded, float_json
from gateway.auth.guard import sees_health_detail
from gateway.errors import ModelNotFound
from gateway.inputs import ImageInput, TextInput
from gateway.media import ImageStats
from gateway.services import (
    EmbeddingService,
    EmbedRequest,
    EmbedResult,
    HealthService,
    ImageStatsService,
    Services,
)
from gateway.services.views import HealthView, InfoView

# `dim` is typed as any JSON value so that a width sent as a string or a float is refused with
# the model's range; the document says what is taken.
WIDTH = BodyContract({"dim": integer_or_null(1)})
HEALTH_DESCRIPTION = (
    "Open to every caller: `status` is `OK`, or `degraded` when the default model is not "
    "pulled. With API keys on, the detail (default model, each model's state, memory, GPU) "
    "is shown to a key of scope `admin` or `metrics` only (the operator's, who reads the same "
    "facts from /metrics and /admin/models; GATEWAY_API_KEYS keys are admin); any other "
    'caller, an `embed` key included, gets `{"status": ...}` alone. With keys off, everyone '
    "gets the detail. Probes: /health/live, /health/ready."
)


class EmbedBody(msgspec.Struct):
    input: str
    dim: int | float | str | bool | None = None
    # Gateway extension: the task prefix (query, document, ...) for models that have them.
    task: str | None = None
    model: str | None = None  # gateway extension: left out, the registry's default model

    contract: ClassVar[BodyContract] = WIDTH


class EmbedResponse(msgspec.Struct):
    embedding: list[float]
    tokens: int
    time_ms: float


class BatchBody(msgspec.Struct):
    inputs: list[str]
    dim: int | float | str | bool | None = None
    task: str | None = None
    model: str | None = None

    contract: ClassVar[BodyContract] = WIDTH


class BatchResponse(msgspec.Struct):
    embeddings: list[list[float]]
    tokens: list[int]
    time_ms: float


class ImageBody(msgspec.Struct):
    content: str
    dim: int | float | str | bool | None = None
    model: str | None = None  # gateway extension: left out, the default image model

    contract: ClassVar[BodyContract] = BodyContract(
        {"content": NOT_EMPTY, "dim": integer_or_null(1)}
    )


class ImageResponse(msgspec.Struct):
    embedding: list[float]
    time_ms: float


class ImageBatchBody(msgspec.Struct):
    contents: list[str]
    dim: int | float | str | bool | None = None
    model: str | None = None

    contract: ClassVar[BodyContract] = WIDTH


class ImageBatchResponse(msgspec.Struct):
    embeddings: list[list[float]]
    time_ms: float


class StatsBody(msgspec.Struct):
    content: str
    averaging_method: str = "arithmetic"

    contract: ClassVar[BodyContract] = BodyContract(
        {"content": NOT_EMPTY, "averaging_method": NOT_EMPTY}
    )


class RgbColor(msgspec.Struct):
    rgb: tuple[float, float, float]
    hex: str


class AverageColor(msgspec.Struct):
    rgb: tuple[float, float, float]
    hex: str
    method: str


class ColorData(msgspec.Struct):
    avg_color: AverageColor
    dominant_color: RgbColor


ExifValue = str | int | float | list[Any] | None


class StatsResponse(msgspec.Struct):
    exif_data: dict[str, ExifValue]
    color_data: ColorData | None  # None when no pixel is opaque enough to count
    time_ms: float


def stats_response(stats: ImageStats, seconds: float) -> StatsResponse:
    colors = stats.color_data
    return StatsResponse(
        exif_data=stats.exif_data,
        color_data=None
        if colors is None
        else ColorData(
            AverageColor(colors.avg_color.rgb, colors.avg_color.hex, colors.avg_color.method),
            RgbColor(colors.dominant_color.rgb, colors.dominant_color.hex),
        ),
        time_ms=elapsed_ms(seconds),
    )


def image_model(embedding: EmbeddingService, named: str | None) -> str:
    """The model the body names, else the default image model."""
    if named:
        return named
    if embedding.default_image_model is None:
        raise ModelNotFound("the registry has no image model", param=None)
    return embedding.default_image_model


async def run(request: AnyRequest, work: Awaitable[EmbedResult]) -> EmbedResult:
    return await unless_disconnected(request.receive, work)


def elapsed_ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def embed_one(
    data: EmbedBody, embedding: EmbeddingService, request: AnyRequest
) -> Response[EmbedResponse]:
    """POST /embed and /txt/embed: one text on the default (or named) model (POST /embed is
    shared with TEI's shape, told apart by its body in gateway.api.tei)."""
    return embedded(*await embed_one_answer(data, embedding, request.receive))


async def embed_one_answer(
    data: EmbedBody, embedding: EmbeddingService, receive: Receive
) -> tuple[EmbedResponse, EmbedResult]:
    """One text's answer (the handlers', and the fast lane's for /txt/embed)."""
    result = await _embedded_texts(embedding, [data.input], data, receive, "input", listed=False)
    body = EmbedResponse(
        float_json(result.vectors[0]), result.token_counts[0], elapsed_ms(result.total_seconds)
    )
    return body, result


async def batch_answer(
    data: BatchBody, embedding: EmbeddingService, receive: Receive
) -> tuple[BatchResponse, EmbedResult]:
    """POST /batch and /txt/batch's answer (the handler's, and the fast lane's)."""
    result = await _embedded_texts(embedding, data.inputs, data, receive, "inputs", listed=True)
    body = BatchResponse(
        float_json(result.vectors), result.token_counts, elapsed_ms(result.total_seconds)
    )
    return body, result


async def _embedded_texts(
    embedding: EmbeddingService,
    texts: list[str],
    options: EmbedBody | BatchBody,
    receive: Receive,
    input_param: str,
    *,
    listed: bool,
) -> EmbedResult:
    """`texts` on the body's model (else the default one), with its task and width (`dim`)."""
    work = embedding.embed(
        EmbedRequest(
            options.model or embedding.default_model,
            [TextInput(text) for text in texts],
            options.task,
            dimensions=options.dim,
            dimensions_param="dim",
            input_param=input_param,
            input_listed=listed,
        )
    )
    return await unless_disconnected(receive, work)


class NativeController(Controller):
    path = "/"
    tags = ["Native (nomic-api-rs)"]

    @post("/txt/embed", status_code=200, summary="Embed one text")
    async def embed(
        self,
        data: JSONBody[EmbedBody],
        embedding: NamedDependency[EmbeddingService],
        request: AnyRequest,
    ) -> Response[EmbedResponse]:
        return await embed_one(data, embedding, request)

    @post(["/batch", "/txt/batch"], status_code=200, summary="Embed several texts")
    async def batch(
        self,
        data: JSONBody[BatchBody],
        embedding: NamedDependency[EmbeddingService],
        request: AnyRequest,
    ) -> Response[BatchResponse]:
        return embedded(*await batch_answer(data, embedding, request.receive))

    @post("/img/embed", status_code=200, summary="Embed one image (URL, data URL or base64)")
    async def image(
        self,
        data: JSONBody[ImageBody],
        embedding: NamedDependency[EmbeddingService],
        request: AnyRequest,
    ) -> ImageResponse:
        images = [ImageInput(data.content)]
        work = embedding.embed(
            EmbedRequest(
                image_model(embedding, data.model),
                images,
                dimensions=data.dim,
                dimensions_param="dim",
                input_param="content",
                input_listed=False,
            )
        )
        result = await run(request, work)
        return ImageResponse(float_json(result.vectors[0]), elapsed_ms(result.total_seconds))

    @post("/img/batch", status_code=200, summary="Embed several images")
    async def images(
        self,
        data: JSONBody[ImageBatchBody],
        embedding: NamedDependency[EmbeddingService],
        request: AnyRequest,
    ) -> ImageBatchResponse:
        images = [ImageInput(content) for content in data.contents]
        work = embedding.embed(
            EmbedRequest(
                image_model(embedding, data.model),
                images,
                dimensions=data.dim,
                dimensions_param="dim",
                input_param="contents",
            )
        )
        result = await run(request, work)
        return ImageBatchResponse(float_json(result.vectors), elapsed_ms(result.total_seconds))

    @post("/img/stats", status_code=200, summary="EXIF fields, average and dominant colour")
    async def stats(
        self, data: JSONBody[StatsBody], image_stats: NamedDependency[ImageStatsService]
    ) -> StatsResponse:
        started = time.perf_counter()
        stats = await image_stats.stats(data.content, data.averaging_method)
        return stats_response(stats, time.perf_counter() - started)

    @get(
        "/health",
        opt=PUBLIC,
        summary="Status; models and memory for an operator's key",
        description=HEALTH_DESCRIPTION,
    )
    async def health(
        self, health: NamedDependency[HealthService], request: Request[Any, Any, Any]
    ) -> HealthView | StatusView:
        view = health.health()
        if not sees_health_detail(request):
            return StatusView(view.status)  # up or down only
        return view

    @get("/info")
    async def info(self, health: NamedDependency[HealthService]) -> InfoView:
        return health.info()


def native_router(services: Services) -> Router:
    return Router(
        path="/",
        route_handlers=[NativeController],
        dependencies={
            "embedding": provide(services.embedding),
            "image_stats": provide(services.images),
            "health": provide(services.health),
        },
        exception_handlers=OLLAMA_ERRORS,
    )
