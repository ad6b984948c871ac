"""The gateway's own administration routes: /admin/models (memory, queues, batching, cache)."""

from __future__ import annotations

from litestar import Controller, Router, get
from litestar.di import NamedDependency

from gateway.api.deps import provide
from gateway.api.errors import OLLAMA_ERRORS
from gateway.services import ModelAdmin, Services
from gateway.services.views import AdminModels


class AdminController(Controller):
    path = "/admin"
    tags = ["Admin"]

    @get("/models", summary="Every registry model with its state, memory, queue and cache")
    async def models(self, models: NamedDependency[ModelAdmin]) -> AdminModels:
        return models.admin_view()


def admin_router(services: Services) -> Router:
    return Router(
        path="/",
        route_handlers=[AdminController],
        dependencies={"models": provide(services.models)},
        exception_handlers=OLLAMA_ERRORS,
    )
