"""Ollama's API: /api/embed, /api/embeddings, /api/version, GET /, and (gateway.api.ollama_models)
/api/tags, /api/show, /api/ps, /api/pull, /api/delete; errors as {"error": "message"}.

Field for field as ollama/ollama serves them, so the `ollama` clients, LangChain's
OllamaEmbeddings and n8n work unchanged.
"""

from __future__ import annotations

from litestar import Controller, Response, Router, get, head, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.api.auth import PUBLIC
from gateway.api.deps import AnyRequest, provide
from gateway.api.disconnect import Receive, unless_disconnected
from gateway.api.errors import OLLAMA_ERRORS, TEI_ERRORS
from gateway.api.ollama_generate import GenerateController
from gateway.api.ollama_models import OllamaModelsController
from gateway.api.ollama_options import context_option
from gateway.api.ollama_wire import (
    EmbedBody,
    EmbeddingsBody,
    EmbeddingsResponse,
    EmbedResponse,
    VersionResponse,
    keep_alive_seconds,
)
from gateway.api.responses import embedded, float_json
from gateway.api.tei import RootAnswer, root_answer
from gateway.services import EmbeddingService, EmbedRequest, EmbedResult, Services

# The Ollama release whose API this gateway mirrors; clients gate features on it.
OLLAMA_API_VERSION = "0.12.7"
NANOS = 1_000_000_000


class OllamaController(Controller):
    path = "/"
    tags = ["Ollama"]

    @get("/", opt=PUBLIC, media_type="text/plain", include_in_schema=False)
    async def root(self) -> str:
        return "Ollama is running"

    @head("/", opt=PUBLIC, media_type="text/plain", include_in_schema=False)
    async def root_head(self) -> None:
        return None

    @post(
        "/",
        status_code=200,
        summary="Embed, as TEI answers POST / (see gateway.api.tei)",
        exception_handlers=TEI_ERRORS,
    )
    async def root_post(
        self, request: AnyRequest, embedding: NamedDependency[EmbeddingService]
    ) -> RootAnswer:
        return await root_answer(request, embedding)

    @get("/api/version", opt=PUBLIC)
    async def version(self) -> VersionResponse:
        return VersionResponse(OLLAMA_API_VERSION)

    @head("/api/version", opt=PUBLIC, media_type="application/json", include_in_schema=False)
    async def version_head(self) -> None:  # Ollama answers HEAD here too (a liveness probe)
        return None

    @post("/api/embed", status_code=200, summary="Embed one or many inputs (normalized)")
    async def embed(
        self,
        data: JSONBody[EmbedBody],
        embedding: NamedDependency[EmbeddingService],
        request: AnyRequest,
    ) -> Response[EmbedResponse]:
        return embedded(*await embed_answer(data, embedding, request.receive))

    @post("/api/embeddings", status_code=200, summary="Legacy: embed one prompt (not normalized)")
    async def embeddings(
        self,
        data: JSONBody[EmbeddingsBody],
        embedding: NamedDependency[EmbeddingService],
        request: AnyRequest,
    ) -> Response[EmbeddingsResponse]:
        return embedded(*await embeddings_answer(data, embedding, request.receive))


async def embed_answer(
    data: EmbedBody, embedding: EmbeddingService, receive: Receive
) -> tuple[EmbedResponse, EmbedResult]:
    """POST /api/embed's answer (the handler's, and the fast lane's)."""
    # Ollama: an empty string loads the model and embeds nothing; list items are inputs,
    # so [""] is refused like ["  "].
    inputs = [data.input] if isinstance(data.input, str) else list(data.input or [])
    if data.input == "":
        inputs = []
    work = embedding.embed(
        EmbedRequest(
            model=data.model,
            inputs=inputs,
            dimensions=data.dimensions,
            ignore_unusable_dimensions=True,  # Ollama slices only when 0 < d < width
            truncate=True if data.truncate is None else data.truncate,
            context_length=context_option(data.options),
            keep_alive=keep_alive_seconds(data.keep_alive),
            input_listed=isinstance(data.input, list),
        )
    )
    result = await unless_disconnected(receive, work)
    if not inputs:
        return EmbedResponse(model=data.model, embeddings=[]), result
    body = EmbedResponse(
        model=data.model,
        embeddings=float_json(result.vectors),
        total_duration=int(result.total_seconds * NANOS),
        load_duration=int(result.load_seconds * NANOS),
        prompt_eval_count=result.prompt_tokens,
    )
    return body, result


async def embeddings_answer(
    data: EmbeddingsBody, embedding: EmbeddingService, receive: Receive
) -> tuple[EmbeddingsResponse, EmbedResult]:
    """POST /api/embeddings' answer (the handler's, and the fast lane's)."""
    inputs = [data.prompt] if data.prompt else []
    work = embedding.embed(
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
    result = await unless_disconnected(receive, work)
    return EmbeddingsResponse(float_json(result.vectors[0]) if inputs else []), result


def ollama_router(services: Services) -> Router:
    return Router(
        path="/",
        route_handlers=[OllamaController, OllamaModelsController, GenerateController],
        dependencies={
            "embedding": provide(services.embedding),
            "models": provide(services.models),
        },
        exception_handlers=OLLAMA_ERRORS,
    )
