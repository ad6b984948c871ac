"""Health and build information: what /health and /info report."""

from __future__ import annotations

import time

from gateway import __version__
from gateway.catalog import Catalog
from gateway.manager import ModelManager
from gateway.registry import Registry
from gateway.runtime import Runtime
from gateway.services.views import HealthView, InfoView, RegistryModelView, RuntimeView
from gateway.settings import Settings


class HealthService:
    def __init__(
        self,
        registry: Registry,
        catalog: Catalog,
        models: ModelManager,
        runtime: Runtime,
        settings: Settings,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.models = models
        self.runtime = runtime
        self.settings = settings
        self.started_at = time.time()

    def model_states(self) -> dict[str, str]:
        """Each registry model: loaded, ready (files present), or not pulled."""
        loaded = {model.spec.name for model in self.models.loaded()}
        return {spec.name: self.catalog.state(spec, spec.name in loaded) for spec in self.registry}

    def health(self) -> HealthView:
        states = self.model_states()
        default_ok = states[self.registry.default_model] != "not pulled"
        image = self.registry.default_image_model
        return HealthView(
            status="OK" if default_ok else "degraded",
            default_model=self.registry.default_model,
            models=states,
            text_model=default_ok,
            vision_model=image is not None and states[image] != "not pulled",
            memory=self.models.memory_view(),
        )

    def info(self) -> InfoView:
        runtime = self.runtime.describe()
        return InfoView(
            version=__version__,
            uptime_s=round(time.time() - self.started_at, 1),
            default_model=self.registry.default_model,
            default_image_model=self.registry.default_image_model,
            registry=str(self.settings.registry),
            settings=self.settings.public_view(),
            runtime=RuntimeView(**runtime),
            models=[
                RegistryModelView(
                    name=spec.name,
                    kind=spec.kind,
                    aliases=list(spec.aliases),
                    dimensions=spec.output_widths or None,
                )
                for spec in self.registry
            ],
        )
