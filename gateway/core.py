"""The composition root: builds the gateway's parts once and the services the API layer gets."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.cache import EmbeddingCache
from gateway.catalog import Catalog
from gateway.manager import ModelManager
from gateway.media import FetchPolicy, ImagePolicy, apply_pixel_limit
from gateway.pulling import Puller
from gateway.registry import Registry
from gateway.runtime import Runtime, log_compute_choice
from gateway.services import (
    EmbeddingService,
    HealthService,
    ImageStatsService,
    ModelAdmin,
    RerankService,
    Services,
    SparseService,
    TokenService,
)
from gateway.settings import Settings
from gateway.sources import ModelStore


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    store: ModelStore
    runtime: Runtime
    manager: ModelManager
    services: Services

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
        puller = Puller(store)
        manager = ModelManager(registry, store, runtime, settings, puller)
        catalog = Catalog(registry, store)
        cache = EmbeddingCache(settings.cache_bytes)
        image_policy = ImagePolicy(
            max_pixels=settings.image_max_pixels, max_bytes=settings.image_max_bytes
        )
        apply_pixel_limit(image_policy)  # Pillow's limit is process-wide: set it once, here
        fetch_policy = FetchPolicy.with_allow_list(
            settings.image_allow_hosts,
            enabled=settings.image_fetch,
            max_bytes=settings.image_max_bytes,
            connect_timeout=settings.image_connect_timeout,
            total_timeout=settings.image_fetch_timeout,
            max_redirects=settings.image_max_redirects,
            allowed_ports=(
                None
                if settings.image_allow_ports is None
                else frozenset(settings.image_allow_ports)
            ),
            ca_file=settings.image_ca_file,
        )
        embedding = EmbeddingService(registry, manager, settings, cache, fetch_policy, image_policy)
        services = Services(
            embedding=embedding,
            rerank=RerankService(registry, store, manager, settings),
            models=ModelAdmin(registry, store, catalog, manager, puller, cache),
            health=HealthService(registry, catalog, manager, runtime, settings),
            images=ImageStatsService(fetch_policy, image_policy),
            tokens=TokenService(registry, store, manager, settings, embedding),
            sparse=SparseService(registry, manager, settings, cache),
        )
        return cls(settings, registry, store, runtime, manager, services)

    async def start(self) -> None:
        await self.manager.preload()

    async def close(self) -> None:
        await self.manager.close()
