"""The Litestar application: routes, auth, CORS, errors, and the gateway's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from gateway import __version__
from gateway.api.auth import api_key_guard
from gateway.api.cohere_embed import CohereEmbedController
from gateway.api.errors import render_error
from gateway.api.models import ModelsController
from gateway.api.native import NativeController
from gateway.api.ollama import OllamaController
from gateway.api.ollama_generate import GenerateController
from gateway.api.openai import OpenAIController
from gateway.api.rerank import RerankController
from gateway.api.tei import TeiController
from gateway.core import Gateway
from gateway.settings import Settings

# Headers browsers may send: Ollama's list, the openai SDK's x-stainless-* set, and our key header.
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "OpenAI-Beta",
    "OpenAI-Organization",
    "OpenAI-Project",
    "X-API-Key",
    "api-key",
    *(
        f"x-stainless-{name}"
        for name in (
            "arch",
            "lang",
            "os",
            "package-version",
            "runtime",
            "runtime-version",
            "retry-count",
            "timeout",
            "helper-method",
            "async",
        )
    ),
]


def create_app(settings: Settings, gateway: Gateway | None = None) -> Litestar:
    """Build the app; the gateway's models are released when the app shuts down."""
    gw = gateway or Gateway.build(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await gw.manager.preload()
        try:
            yield
        finally:
            await gw.close()

    cors = CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_origin_regex=settings.cors_origin_regex,
        allow_methods=["GET", "POST", "HEAD", "DELETE", "OPTIONS"],
        allow_headers=CORS_HEADERS,
        expose_headers=["X-Truncated-Inputs", "Retry-After"],
    )
    return Litestar(
        route_handlers=[
            OllamaController,
            ModelsController,
            OpenAIController,
            RerankController,
            NativeController,
            TeiController,
            CohereEmbedController,
            GenerateController,
        ],
        # A closure, not `state: State`: asking for State makes Litestar copy it per request.
        dependencies={"gw": Provide(lambda: gw, sync_to_thread=False, use_cache=True)},
        guards=[api_key_guard],
        exception_handlers={Exception: render_error},
        cors_config=cors,
        lifespan=[lifespan],
        state=State({"gateway": gw, "settings": settings}),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Embedding gateway",
            version=__version__,
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
        debug=False,
    )
