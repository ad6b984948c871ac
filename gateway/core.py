"""The composition root: builds the gateway's parts once and hands them to the API layer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from gateway.cache import EmbeddingCache
from gateway.catalog import Catalog
from gateway.manager import ModelManager
from gateway.registry import Registry
from gateway.runtime import Runtime, log_compute_choice
from gateway.service import EmbeddingService
from gateway.settings import Settings
from gateway.sources import ModelStore


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    store: ModelStore
    runtime: Runtime
    manager: ModelManager
    service: EmbeddingService
    catalog: Catalog
    started_at: float = field(default_factory=time.time)
    _pull_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def pull_lock(self, name: str) -> asyncio.Lock:
        """One pull of a model at a time: two would write the same files."""
        return self._pull_locks.setdefault(name, asyncio.Lock())

    @classmethod
    def build(cls, settings: Settings, registry: Registry | None = None) -> Gateway:
        registry = registry or Registry.load(settings.registry)
        store = ModelStore(settings.models_dir, registry.base_dir)
        runtime = Runtime(
            device=settings.device,
            threads=settings.threads,
            spin=settings.spin,
            backend=settings.backend,
            precision=settings.precision,
            cache_dir=settings.models_dir / ".cache" / "optimized"
            if settings.graph_cache
            else None,
        )
        log_compute_choice(runtime)
        manager = ModelManager(registry, store, runtime, settings)
        return cls(
            settings=settings,
            registry=registry,
            store=store,
            runtime=runtime,
            manager=manager,
            service=EmbeddingService(
                registry, manager, settings, EmbeddingCache(settings.cache_bytes)
            ),
            catalog=Catalog(registry, store),
        )

    async def close(self) -> None:
        await self.manager.close()
