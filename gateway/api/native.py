"""Routes of the server this gateway replaces (nomic-api-rs), on the registry's default model.

`POST /embed` `{"input", "dim"}` -> `{"embedding", "tokens", "time_ms"}`, `POST /batch`
`{"inputs", "dim"}` -> `{"embeddings", "tokens", "time_ms"}` (also under /txt/), `GET /health`,
`GET /info`. Its users switch by changing the URL only.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Controller, get, post

from gateway import __version__
from gateway.api.auth import PUBLIC
from gateway.core import Gateway
from gateway.service import EmbedRequest, EmbedResult


class EmbedBody(msgspec.Struct):
    input: str
    dim: int | None = None
    # Gateway extension: the task prefix (query, document, ...) for models that have them.
    task: str | None = None


class EmbedResponse(msgspec.Struct):
    embedding: list[float]
    tokens: int
    time_ms: float


class BatchBody(msgspec.Struct):
    inputs: list[str]
    dim: int | None = None
    task: str | None = None


class BatchResponse(msgspec.Struct):
    embeddings: list[list[float]]
    tokens: list[int]
    time_ms: float


class HealthResponse(msgspec.Struct):
    status: str
    default_model: str
    models: dict[str, str]
    text_model: bool


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


async def embed_default(gw: Gateway, texts: list[str], dim: int | None, task: str | None):
    return await gw.service.embed(
        EmbedRequest(model=gw.registry.default_model, inputs=texts, dimensions=dim, task=task)
    )


def elapsed_ms(result: EmbedResult) -> float:
    return round(result.total_seconds * 1000, 3)


class NativeController(Controller):
    path = "/"
    tags = ["Native (nomic-api-rs)"]

    @post(["/embed", "/txt/embed"], status_code=200, summary="Embed one text")
    async def embed(self, data: EmbedBody, gw: Gateway) -> EmbedResponse:
        result = await embed_default(gw, [data.input], data.dim, data.task)
        return EmbedResponse(result.vectors[0].tolist(), result.token_counts[0], elapsed_ms(result))

    @post(["/batch", "/txt/batch"], status_code=200, summary="Embed several texts")
    async def batch(self, data: BatchBody, gw: Gateway) -> BatchResponse:
        result = await embed_default(gw, data.inputs, data.dim, data.task)
        return BatchResponse(result.vectors.tolist(), result.token_counts, elapsed_ms(result))

    @get("/health", opt=PUBLIC)
    async def health(self, gw: Gateway) -> HealthResponse:
        states = model_states(gw)
        default_ok = states[gw.registry.default_model] != "not pulled"
        return HealthResponse(
            status="OK" if default_ok else "degraded",
            default_model=gw.registry.default_model,
            models=states,
            text_model=default_ok,
        )

    @get("/info")
    async def info(self, gw: Gateway) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptime_s": round(time.time() - gw.started_at, 1),
            "default_model": gw.registry.default_model,
            "registry": str(gw.settings.registry),
            "settings": gw.settings.public_view(),
            "runtime": gw.runtime.describe(),
            "models": [
                {"name": spec.name, "kind": spec.kind, "aliases": spec.aliases}
                for spec in gw.registry
            ],
        }
