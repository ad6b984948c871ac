"""Ollama's API: /api/embed, /api/embeddings, /api/tags, /api/show, /api/version, GET /.

Field for field as ollama/ollama serves them (see reference/api-contracts.md section 1), so the
`ollama` clients, LangChain's OllamaEmbeddings and n8n work unchanged.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, head, post

from gateway.api.auth import PUBLIC
from gateway.api.disconnect import unless_disconnected
from gateway.api.ollama_options import context_option
from gateway.api.responses import embedded
from gateway.api.tei import embed_by_body
from gateway.catalog import ModelInfo
from gateway.core import Gateway
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.service import EmbedRequest
from gateway.units import parse_duration

# The Ollama release whose API this gateway mirrors; clients gate features on it.
OLLAMA_API_VERSION = "0.12.7"
NANOS = 1_000_000_000


# -- wire types ----------------------------------------------------------------------------------


class EmbedBody(msgspec.Struct):
    model: str
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int | float | str | bool | None = None
    keep_alive: float | str | None = None
    # Modelfile parameters (num_ctx, temperature, ...). LangChain sends a dozen of them, all null.
    options: dict[str, Any] | None = None


class EmbedResponse(msgspec.Struct, omit_defaults=True):
    model: str
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class EmbeddingsBody(msgspec.Struct):
    model: str
    prompt: str = ""
    keep_alive: float | str | None = None
    options: dict[str, Any] | None = None


class EmbeddingsResponse(msgspec.Struct):
    embedding: list[float]


class ModelDetails(msgspec.Struct):
    parent_model: str
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ListedModel(msgspec.Struct, omit_defaults=True):
    name: str
    model: str
    modified_at: datetime
    size: int
    digest: str
    details: ModelDetails
    capabilities: list[str] | None = None


class TagsResponse(msgspec.Struct):
    models: list[ListedModel]


class ShowBody(msgspec.Struct):
    model: str = ""
    name: str = ""  # deprecated spelling, still sent by old clients
    verbose: bool = False


class ShowResponse(msgspec.Struct):
    modelfile: str
    parameters: str
    template: str
    license: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: datetime


class VersionResponse(msgspec.Struct):
    version: str


# -- helpers -------------------------------------------------------------------------------------


def keep_alive_seconds(raw: float | str | None) -> float | None:
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="keep_alive") from None


def details_of(info: ModelInfo) -> ModelDetails:
    spec = info.spec
    return ModelDetails(
        parent_model="",
        format="onnx",
        family=spec.family,
        families=[spec.family],
        parameter_size=spec.parameter_size,
        quantization_level=spec.quantization,
    )


def listed(gw: Gateway, info: ModelInfo) -> ListedModel:
    return ListedModel(
        name=info.name,
        model=info.name,
        modified_at=info.modified_at,
        size=info.size,
        digest=gw.catalog.digest(info.spec),
        details=details_of(info),
        capabilities=info.capabilities,
    )


def model_info_of(info: ModelInfo, digest: str) -> dict[str, Any]:
    spec = info.spec
    family = spec.family
    facts: dict[str, Any] = {"general.architecture": family, "general.file_type": "onnx"}
    if info.context_length is not None:
        facts[f"{family}.context_length"] = info.context_length
    if info.embedding_length is not None:
        facts[f"{family}.embedding_length"] = info.embedding_length
    facts["gateway.kind"] = spec.kind
    facts["gateway.sha256"] = digest
    for key, value in gateway_facts(spec).items():
        facts[f"gateway.{key}"] = value
    return facts


def gateway_facts(spec: Any) -> dict[str, Any]:
    """Registry facts a client may want to see (prefixes, Matryoshka widths, pooling)."""
    facts: dict[str, Any] = {}
    for key in ("pooling", "layer_norm", "normalize", "prefixes", "default_task"):
        if hasattr(spec, key):
            facts[key] = getattr(spec, key)
    if hasattr(spec, "advertised_dimensions"):
        facts["dimensions"] = spec.advertised_dimensions
    return facts


# -- routes --------------------------------------------------------------------------------------


class OllamaController(Controller):
    path = "/"
    tags = ["Ollama"]

    @get("/", opt=PUBLIC, media_type="text/plain", include_in_schema=False)
    async def root(self) -> str:
        return "Ollama is running"

    @head("/", opt=PUBLIC, media_type="text/plain", include_in_schema=False)
    async def root_head(self) -> None:
        return None

    @post("/", status_code=200, summary="Embed, as TEI answers POST / (see gateway.api.tei)")
    async def root_post(self, request: Request, gw: Gateway) -> Any:
        return await embed_by_body(request, gw)

    @get("/api/version", opt=PUBLIC)
    async def version(self) -> VersionResponse:
        return VersionResponse(OLLAMA_API_VERSION)

    @post("/api/embed", status_code=200, summary="Embed one or many inputs (normalized)")
    async def embed(
        self, data: EmbedBody, gw: Gateway, request: Request
    ) -> Response[EmbedResponse]:
        inputs = [data.input] if isinstance(data.input, str) else list(data.input or [])
        if inputs == [""]:
            inputs = []  # Ollama: empty input loads the model and embeds nothing
        work = gw.service.embed(
            EmbedRequest(
                model=data.model,
                inputs=inputs,
                dimensions=data.dimensions,
                truncate=True if data.truncate is None else data.truncate,
                context_length=context_option(data.options),
                keep_alive=keep_alive_seconds(data.keep_alive),
                input_listed=isinstance(data.input, list),
            )
        )
        result = await unless_disconnected(request, work)
        if not inputs:
            return embedded(EmbedResponse(model=data.model, embeddings=[]), result)
        return embedded(
            EmbedResponse(
                model=data.model,
                embeddings=result.vectors.tolist(),
                total_duration=int(result.total_seconds * NANOS),
                load_duration=int(result.load_seconds * NANOS),
                prompt_eval_count=result.prompt_tokens,
            ),
            result,
        )

    @post("/api/embeddings", status_code=200, summary="Legacy: embed one prompt (not normalized)")
    async def embeddings(
        self, data: EmbeddingsBody, gw: Gateway, request: Request
    ) -> Response[EmbeddingsResponse]:
        inputs = [data.prompt] if data.prompt else []
        work = gw.service.embed(
            EmbedRequest(
                model=data.model,
                inputs=inputs,
                context_length=context_option(data.options),
                keep_alive=keep_alive_seconds(data.keep_alive),
                normalize=False,
                input_param="prompt",
                input_listed=False,
            )
        )
        result = await unless_disconnected(request, work)
        return embedded(EmbeddingsResponse(result.vectors[0].tolist() if inputs else []), result)

    @get("/api/tags")
    async def list_models(self, gw: Gateway) -> TagsResponse:
        # Digests of local-folder models are hashed on first sight: keep that off the loop.
        return await asyncio.to_thread(
            lambda: TagsResponse([listed(gw, info) for info in gw.catalog.available()])
        )

    @head("/api/tags", include_in_schema=False)
    async def tags_head(self) -> None:
        return None

    @post("/api/show", status_code=200)
    async def show(self, data: ShowBody, gw: Gateway) -> ShowResponse:
        name = data.model or data.name
        spec = gw.service.resolve(name).spec
        info = gw.catalog.info(spec)
        if not info.present:
            # As Ollama (and /v1/models/{id}): a model is shown once its files are pulled.
            raise ModelNotFound(f"model '{name}' not found, try pulling it first")
        digest = await asyncio.to_thread(gw.catalog.digest, spec)
        facts = model_info_of(info, digest)
        facts["gateway.batching"] = await asyncio.to_thread(gw.catalog.batching, spec)
        return ShowResponse(
            modelfile=f"# served by embedding-gateway from {spec.source or 'registry.yaml'}\n",
            parameters="",
            template="{{ .Prompt }}",
            license=spec.license or "",
            details=details_of(info),
            model_info=facts,
            capabilities=info.capabilities,
            modified_at=info.modified_at,
        )
