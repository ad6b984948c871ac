"""Routes of the server this gateway replaces (nomic-api-rs), on the registry's default models.

Text: `POST /embed` `{"input", "dim"}` -> `{"embedding", "tokens", "time_ms"}`, `POST /batch`
`{"inputs", "dim"}` -> `{"embeddings", "tokens", "time_ms"}` (also under /txt/). Images, on the
default image model: `POST /img/embed` `{"content", "dim"}`, `POST /img/batch`
`{"contents", "dim"}`, `POST /img/stats` `{"content", "averaging_method"}`, where content is a URL,
a data URL or raw base64. `GET /health`, `GET /info`. Its users switch by changing the URL only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post

from gateway import __version__
from gateway.api.auth import PUBLIC
from gateway.api.disconnect import unless_disconnected
from gateway.api.responses import embedded
from gateway.core import Gateway
from gateway.errors import ModelNotFound
from gateway.inputs import ImageInput, TextInput
from gateway.media import image_stats, read_image_bytes
from gateway.service import EmbedRequest, EmbedResult


class EmbedBody(msgspec.Struct):
    input: str
    dim: int | float | str | bool | None = None
    # Gateway extension: the task prefix (query, document, ...) for models that have them.
    task: str | None = None


class EmbedResponse(msgspec.Struct):
    embedding: list[float]
    tokens: int
    time_ms: float


class BatchBody(msgspec.Struct):
    inputs: list[str]
    dim: int | float | str | bool | None = None
    task: str | None = None


class BatchResponse(msgspec.Struct):
    embeddings: list[list[float]]
    tokens: list[int]
    time_ms: float


class ImageBody(msgspec.Struct):
    content: str
    dim: int | float | str | bool | None = None


class ImageResponse(msgspec.Struct):
    embedding: list[float]
    time_ms: float


class ImageBatchBody(msgspec.Struct):
    contents: list[str]
    dim: int | float | str | bool | None = None


class ImageBatchResponse(msgspec.Struct):
    embeddings: list[list[float]]
    time_ms: float


class StatsBody(msgspec.Struct):
    content: str
    averaging_method: str = "arithmetic"


class HealthResponse(msgspec.Struct):
    status: str
    default_model: str
    models: dict[str, str]
    text_model: bool
    vision_model: bool
    memory: dict[str, Any]


def model_states(gw: Gateway) -> dict[str, str]:
    """Each registry model: loaded, ready (files present), or not pulled."""
    loaded = {model.spec.name for model in gw.manager.loaded()}
    states = {}
    for spec in gw.registry:
        if spec.name in loaded:
            states[spec.name] = "loaded"
        else:
            states[spec.name] = "ready" if gw.store.is_present(spec) else "not pulled"
    return states


def image_model(gw: Gateway) -> str:
    if gw.registry.default_image_model is None:
        raise ModelNotFound("the registry has no image model", param=None)
    return gw.registry.default_image_model


async def run(request: Request, work: Awaitable[EmbedResult]) -> EmbedResult:
    return await unless_disconnected(request, work)


def elapsed_ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def embed_one(data: EmbedBody, gw: Gateway, request: Request) -> Response[EmbedResponse]:
    """POST /embed and /txt/embed: one text on the default model (POST /embed is shared with
    TEI's shape, told apart by its body in gateway.api.tei)."""
    work = gw.service.embed(
        EmbedRequest(
            gw.registry.default_model,
            [TextInput(data.input)],
            data.task,
            dimensions=data.dim,
            dimensions_param="dim",
            input_listed=False,
        )
    )
    result = await run(request, work)
    body = EmbedResponse(
        result.vectors[0].tolist(), result.token_counts[0], elapsed_ms(result.total_seconds)
    )
    return embedded(body, result)


class NativeController(Controller):
    path = "/"
    tags = ["Native (nomic-api-rs)"]

    @post("/txt/embed", status_code=200, summary="Embed one text")
    async def embed(
        self, data: EmbedBody, gw: Gateway, request: Request
    ) -> Response[EmbedResponse]:
        return await embed_one(data, gw, request)

    @post(["/batch", "/txt/batch"], status_code=200, summary="Embed several texts")
    async def batch(
        self, data: BatchBody, gw: Gateway, request: Request
    ) -> Response[BatchResponse]:
        texts = [TextInput(text) for text in data.inputs]
        work = gw.service.embed(
            EmbedRequest(
                gw.registry.default_model,
                texts,
                data.task,
                dimensions=data.dim,
                dimensions_param="dim",
                input_param="inputs",
            )
        )
        result = await run(request, work)
        body = BatchResponse(
            result.vectors.tolist(), result.token_counts, elapsed_ms(result.total_seconds)
        )
        return embedded(body, result)

    @post("/img/embed", status_code=200, summary="Embed one image (URL, data URL or base64)")
    async def image(self, data: ImageBody, gw: Gateway, request: Request) -> ImageResponse:
        images = [ImageInput(data.content)]
        work = gw.service.embed(
            EmbedRequest(
                image_model(gw),
                images,
                dimensions=data.dim,
                dimensions_param="dim",
                input_param="content",
                input_listed=False,
            )
        )
        result = await run(request, work)
        return ImageResponse(result.vectors[0].tolist(), elapsed_ms(result.total_seconds))

    @post("/img/batch", status_code=200, summary="Embed several images")
    async def images(
        self, data: ImageBatchBody, gw: Gateway, request: Request
    ) -> ImageBatchResponse:
        images = [ImageInput(content) for content in data.contents]
        work = gw.service.embed(
            EmbedRequest(
                image_model(gw),
                images,
                dimensions=data.dim,
                dimensions_param="dim",
                input_param="contents",
            )
        )
        result = await run(request, work)
        return ImageBatchResponse(result.vectors.tolist(), elapsed_ms(result.total_seconds))

    @post("/img/stats", status_code=200, summary="EXIF fields, average and dominant colour")
    async def stats(self, data: StatsBody, gw: Gateway) -> dict[str, Any]:
        started = time.perf_counter()
        service = gw.service
        raw = await read_image_bytes(
            data.content, fetch=service.fetch_policy, image=service.image_policy, param="content"
        )
        stats = await asyncio.to_thread(
            image_stats,
            raw,
            averaging_method=data.averaging_method,
            policy=service.image_policy,
        )
        return {**stats.to_dict(), "time_ms": elapsed_ms(time.perf_counter() - started)}

    @get("/health", opt=PUBLIC)
    async def health(self, gw: Gateway) -> HealthResponse:
        states = model_states(gw)
        default_ok = states[gw.registry.default_model] != "not pulled"
        image = gw.registry.default_image_model
        return HealthResponse(
            status="OK" if default_ok else "degraded",
            default_model=gw.registry.default_model,
            models=states,
            text_model=default_ok,
            vision_model=image is not None and states[image] != "not pulled",
            memory=gw.manager.memory_view(),
        )

    @get("/info")
    async def info(self, gw: Gateway) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptime_s": round(time.time() - gw.started_at, 1),
            "default_model": gw.registry.default_model,
            "default_image_model": gw.registry.default_image_model,
            "registry": str(gw.settings.registry),
            "settings": gw.settings.public_view(),
            "runtime": gw.runtime.describe(),
            "models": [
                {
                    "name": spec.name,
                    "kind": spec.kind,
                    "aliases": spec.aliases,
                    "dimensions": getattr(spec, "advertised_dimensions", None),
                }
                for spec in gw.registry
            ],
        }
