"""Model administration: list, show, pull, delete, and what is loaded, for every API family.

Routers render these views in their own shapes (Ollama's /api/tags, /api/show, /api/ps, the
gateway's /admin/models). Pulls go through the one single-flight Puller that auto-pull and the
CLI also use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.cache import EmbeddingCache
from gateway.catalog import Catalog, ModelInfo
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from gateway.load_errors import pull_error
from gateway.manager import LoadedModel, ModelManager
from gateway.pulling import Listener, Puller
from gateway.registry import Registry
from gateway.services.views import AdminModel, AdminModels, admin_loaded_fields
from gateway.sources import LocalSource, ModelStore, PullInProgress, SourceError
from gateway.specs import AnySpec

__all__ = ["InUse", "Listed", "Loaded", "ModelAdmin", "ModelInfo", "Shown"]


class InUse(GatewayError):
    status_code = 409
    code = "model_in_use"


@dataclass(frozen=True)
class Listed:
    info: ModelInfo
    digest: str


@dataclass(frozen=True)
class Shown:
    info: ModelInfo
    digest: str
    batching: str  # how its inputs are scheduled


@dataclass(frozen=True)
class Loaded:
    info: ModelInfo
    digest: str
    device: str
    memory_bytes: int
    keep_alive: float  # seconds; inf: forever
    expires_at: float | None  # epoch seconds; None while requests are in flight


class ModelAdmin:
    def __init__(
        self,
        registry: Registry,
        store: ModelStore,
        catalog: Catalog,
        models: ModelManager,
        puller: Puller,
        cache: EmbeddingCache,
    ) -> None:
        self.registry = registry
        self.store = store
        self.catalog = catalog
        self.models = models
        self.puller = puller
        self.cache = cache

    def resolve(self, name: str) -> AnySpec:
        if not name or not name.strip():
            raise InvalidRequest("model is required", param="model")
        return self.registry.resolve(name).spec

    async def available(self) -> list[Listed]:
        """Pulled models. Digests of local-folder models are hashed on first sight: off the
        event loop."""

        def listing() -> list[Listed]:
            return [Listed(i, self.catalog.digest(i.spec)) for i in self.catalog.available()]

        return await asyncio.to_thread(listing)

    def info(self, spec: AnySpec) -> ModelInfo:
        return self.catalog.info(spec)

    def present(self, name: str) -> ModelInfo:
        """A pulled model's info; a model whose files are not there is not found."""
        info = self.catalog.info(self.resolve(name))
        if not info.present:
            raise ModelNotFound(f"model '{name}' not found, try pulling it first")
        return info

    async def show(self, name: str) -> Shown:
        info = self.present(name)
        digest = await asyncio.to_thread(self.catalog.digest, info.spec)
        batching = await asyncio.to_thread(self.catalog.batching, info.spec)
        return Shown(info, digest, batching)

    def loaded(self) -> list[Loaded]:
        return [
            Loaded(
                info=self.catalog.info(model.spec),
                # The loaded weights' (hashed at load): never hash on the event loop here.
                digest=model.digest,
                device=model.device,
                memory_bytes=model.memory_bytes,
                keep_alive=model.keep_alive,
                expires_at=model.expires_at,
            )
            for model in self.models.loaded()
        ]

    async def pull(self, spec: AnySpec, listener: Listener | None = None) -> None:
        """Pull (or join the pull of) `spec`; a source that fails is a 400 that says why."""
        try:
            await self.puller.pull(spec, listener)
        except SourceError as exc:
            raise pull_error(spec.name, exc) from None

    async def unload(self, name: str) -> None:
        """Unload a model (now, or when its requests in flight end); nothing if not loaded."""
        await self.models.expire(self.resolve(name).name)

    async def delete(self, name: str) -> None:
        spec = self.resolve(name)
        if any(
            isinstance(self.store.source_of(spec, ref), LocalSource) for ref in spec.files.values()
        ):
            raise InvalidRequest(f"model '{name}' is served from a local folder; delete it there")
        self._refuse_while_busy(spec, name)
        loaded = self.models.get(spec.name)
        if loaded is not None and not await self.models.unload(spec.name, reason="deleted"):
            raise InUse(f"model '{name}' is serving requests; try again when they finish")
        self._refuse_while_busy(spec, name)  # again: a request may have started one meanwhile
        try:
            removed = await asyncio.to_thread(self.store.delete, spec)
        except PullInProgress:
            raise InUse(
                f"model '{name}' is being pulled by another process; try again when it finishes"
            ) from None
        except SourceError as exc:  # the models folder cannot be changed: 507
            raise pull_error(spec.name, exc, "deleted") from None
        if not removed:
            raise ModelNotFound(f"model '{name}' not found")

    def _refuse_while_busy(self, spec: AnySpec, name: str) -> None:
        """Deleting files under a pull breaks it (its staging folder goes), under a load fails
        the requests waiting for it: both are refused as a model serving requests is."""
        if self.puller.is_pulling(spec.name):
            raise InUse(f"model '{name}' is being pulled; try again when the pull finishes")
        if self.models.is_loading(spec.name):
            raise InUse(f"model '{name}' is being loaded; try again when the load finishes")

    def admin_view(self) -> AdminModels:
        """Every registry model with its state; loaded ones with memory, queue and cache."""
        loaded = {model.spec.name: model for model in self.models.loaded()}
        rows = []
        for spec in self.registry:
            model: LoadedModel | None = loaded.get(spec.name)
            present = self.store.is_present(spec)
            row = AdminModel(
                name=spec.name,
                kind=spec.kind,
                state=self.catalog.state(spec, model is not None),
                estimate_bytes=self.models.estimate(spec) if present else None,
            )
            if model is not None:
                row = admin_loaded_fields(row, model, self.cache)
            if spec.name in self.models.load_failures:
                row.last_load_error = self.models.load_failures[spec.name]
            rows.append(row)
        return AdminModels(memory=self.models.memory_view(), cache=self.cache.view(), models=rows)
