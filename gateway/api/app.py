"""The Litestar application: one Router per wire family, auth, CORS, and the lifespan.

`create_app(settings)` is the one factory: it builds the gateway (gateway.core), gives each
Router the services it needs through dependency providers, and installs each family's error
handler on its Router; `render_error` covers what fails before routing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, Router, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from gateway import __version__, metrics
from gateway.api.admin import admin_router
from gateway.api.bodies import refuse_bad_bodies
from gateway.api.cohere_embed import cohere_embed_router
from gateway.api.contract import make_exact
from gateway.api.draining import Drain
from gateway.api.errors import render_error
from gateway.api.fast_lane import with_fast_lane
from gateway.api.head import with_head_as_get
from gateway.api.native import native_router
from gateway.api.observe import REQUEST_ID_HEADER, metrics_router, observed, refresher
from gateway.api.ollama import ollama_router
from gateway.api.openai import openai_routers
from gateway.api.origins import cors_config, with_origin_gate
from gateway.api.probes import ProbesController
from gateway.api.rerank import rerank_routers
from gateway.api.tei import tei_router
from gateway.auth.guard import Authenticator, authenticate
from gateway.core import Gateway
from gateway.errors import StartupFailed
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
    REQUEST_ID_HEADER,
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
# Where Litestar serves the OpenAPI document and its Swagger page.
DOCS_PATH = "/docs"


@get("/openapi.json", include_in_schema=False, media_type=MediaType.JSON)
async def openapi_document(request: Request[Any, Any, Any]) -> bytes:
    """The OpenAPI document at the usual address too (Litestar serves it under /docs)."""
    return msgspec.json.encode(request.app.openapi_schema.to_schema())


def _json_not_found(response: Response[Any]) -> Response[Any]:
    """Litestar answers an unknown page under /docs with its own HTML 404; raised instead, it
    gets the JSON 404 that every other unknown path gets (render_error)."""
    if response.status_code == 404:
        raise NotFoundException()
    return response


def create_app(
    settings: Settings, gateway: Gateway | None = None, *, drain: Drain | None = None
) -> Litestar:
    """Build the app; the gateway's models are released when the app shuts down.

    `drain` (gateway serve's) answers the requests still working when the shutdown grace runs
    out; it goes inside the request observer, so that their 503 is the status counted and
    logged, and carries the request's X-Request-ID."""
    gw = gateway or Gateway.build(settings)
    services = gw.services

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            await gw.start()
        except StartupFailed as exc:
            app.state.startup_error = exc  # gateway.server reports it in one line, then exits
            await gw.close()
            raise
        try:
            yield
        finally:
            await gw.close()
            metrics.process_exited()

    cors = cors_config(
        settings,
        allow_headers=CORS_HEADERS,
        expose_headers=[
            "X-Truncated-Inputs",
            "X-Truncated-Query",
            "Retry-After",
            REQUEST_ID_HEADER,
        ],
    )
    app = Litestar(
        route_handlers=[
            ollama_router(services),
            *openai_routers(services),
            *rerank_routers(services),
            native_router(services),
            tei_router(services),
            cohere_embed_router(services),
            admin_router(services),
            openapi_document,
            metrics_router(refresher(gw.manager), public=settings.metrics_public),
            ProbesController,
        ],
        # The authenticator lives in app.state: the guard, /health and SIGHUP (server.py) use it.
        guards=[authenticate],
        before_request=refuse_bad_bodies,
        exception_handlers={Exception: render_error},
        cors_config=cors,
        lifespan=[lifespan],
        state=State({"auth": Authenticator.from_settings(settings)}),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Embedding gateway",
            version=__version__,
            path=DOCS_PATH,
            openapi_router=Router(
                DOCS_PATH, route_handlers=[], include_in_schema=False, after_request=_json_not_found
            ),
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
        debug=False,
        logging_config=None,  # logging is set up once, by gateway.logs (format, request IDs)
    )
    # Inside the lane, which leaves requests with an Origin alone.
    with_origin_gate(app, cors, bound_to=settings.host)
    # Inside the lane too: it answers HEAD only, the lane POST only, so the lane's requests
    # skip one layer.
    with_head_as_get(app)
    if settings.fast_lane:
        with_fast_lane(app, services.embedding, app.state.auth, settings.max_body_bytes)
    if drain is not None:
        app.state.drain = drain  # readiness reads it (gateway/api/probes.py)
        app.asgi_handler = drain.wrap(app.asgi_handler)
    observed(app, access_log=settings.access_log)
    make_exact(app)
    return app
