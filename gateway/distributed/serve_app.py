"""The gateway as a Ray Serve application: an ingress that routes by model, and model replicas.

    HTTP --> Serve proxy --> GatewayIngress --(handle, multiplexed_model_id)--> GatewayReplica

The ingress reads the model from the request (routing.ModelRouter) and calls the model
deployment's handle with it as the multiplexed model id, so Serve sends the request to a
replica that holds that model. Every route (Ollama, OpenAI, rerank, native, admin) is answered
by the app in the replica; the ingress copies bytes.

Start it with `gateway serve --ray`, or with Serve's CLI and a config whose import path is
`gateway.distributed.serve_app:app_builder` (deploy/ray/serve-config.yaml).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import Response

from gateway.distributed.asgi import ForwardedRequest, ForwardedResponse
from gateway.distributed.cluster import check_port_free, start_local_or_join
from gateway.distributed.options import RayServeOptions, settings_overrides
from gateway.distributed.replica import GatewayReplica
from gateway.distributed.routing import ModelRouter
from gateway.registry import Registry
from gateway.settings import Settings
from gateway.sources import ModelStore

log = logging.getLogger("gateway.distributed")

APP_NAME = "gateway"
MODELS_DEPLOYMENT = "GatewayModels"
INGRESS_DEPLOYMENT = "GatewayIngress"


class GatewayIngress:
    """Deployment class of the ingress: forward each request, routed by its model."""

    def __init__(self, models: DeploymentHandle[Any], settings: Settings) -> None:
        registry = Registry.load(settings.registry)
        self.router = ModelRouter(registry, ModelStore(settings.models_dir, registry.base_dir))
        self.models = models
        self.max_body_bytes = settings.max_body_bytes

    async def __call__(self, request: Request) -> Response:
        body = await self._read_body(request)
        scope = request.scope
        forwarded = ForwardedRequest(
            method=request.method,
            path=scope["path"],
            query_string=scope.get("query_string", b""),
            headers=list(scope["headers"]),
            body=body,
            client=tuple(scope["client"]) if scope.get("client") else None,
            scheme=scope.get("scheme", "http"),
            http_version=scope.get("http_version", "1.1"),
        )
        model = self.router.model_for(forwarded.path, body, forwarded.method)
        handle = self.models if model is None else self.models.options(multiplexed_model_id=model)
        answer: ForwardedResponse = await handle.forward.remote(forwarded)
        response = Response(content=answer.body, status_code=answer.status)
        # As the app sent them, content-length included, less X-Request-ID: Serve's proxy adds
        # it (the same value: the proxy puts its ID on the request the app reads) and a second
        # copy reads as "id, id" to clients.
        response.raw_headers = [(k, v) for k, v in answer.headers if k.lower() != b"x-request-id"]
        return response

    async def _read_body(self, request: Request) -> bytes:
        """The body, read no further than one byte past the limit: the app then answers 413 in
        its API's shape without the ingress holding an unbounded body."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                break
        return bytes(body)


@dataclass(frozen=True)
class Layout:
    """The application and what it was built from (for logs and tests)."""

    app: serve.Application
    replica_settings: Settings
    models_per_replica: int
    model_options: dict[str, Any]


def build_app(settings: Settings, options: RayServeOptions) -> Layout:
    """The Serve application for `settings`: paths are made absolute (replicas may start in
    another directory) and each replica gets its share of the machine (options.py)."""
    settings = absolute_paths(settings)
    registry = Registry.load(settings.registry)
    replica_settings = options.replica_settings(settings, registry)
    limit = options.model_limit(settings)
    model_options = options.model_deployment_options(settings, registry)
    models = serve.deployment(name=MODELS_DEPLOYMENT, **model_options)(GatewayReplica)
    ingress = serve.deployment(name=INGRESS_DEPLOYMENT, **options.ingress_deployment_options())(
        GatewayIngress
    )
    app = ingress.bind(models.bind(replica_settings, limit), settings)
    return Layout(app, replica_settings, limit, model_options)


def absolute_paths(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        registry=Path(settings.registry).resolve(),
        models_dir=Path(settings.models_dir).resolve(),
    )


def app_builder(args: dict[str, Any]) -> serve.Application:
    """For `serve run` and KubeRay: `args` are Ray options by field name (options.py), plus
    `settings`: a mapping of gateway settings by field name; the rest comes from GATEWAY_*."""
    args = dict(args or {})
    settings = Settings.load(overrides=settings_overrides(args.pop("settings", None)))
    return build_app(settings, RayServeOptions.load(overrides=args)).app


def run(settings: Settings, options: RayServeOptions, *, blocking: bool = True) -> Layout:
    """`gateway serve --ray`: join (or start) a Ray cluster, serve on settings.host:port."""
    if options.address is None:  # the proxy binds on this machine
        check_port_free(settings.host, settings.port)
    if not ray.is_initialized():
        start_local_or_join(options.address)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    layout = build_app(settings, options)
    started = time.perf_counter()
    serve.run(layout.app, name=APP_NAME, route_prefix="/")
    log.info(
        "Ray Serve app %r up in %.1fs on http://%s:%d: %s",
        APP_NAME,
        time.perf_counter() - started,
        settings.host,
        settings.port,
        layout.model_options,
    )
    if blocking:
        # Kubernetes and `timeout` stop with SIGTERM: leave as on Ctrl-C, replicas released.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
    return layout
