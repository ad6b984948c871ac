"""What the gateway can tell about a registry model, independent of any wire format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.encoders import Capability, capabilities_of
from gateway.registry import Registry, tagged_name
from gateway.runtime import uses_dynamic_quantization
from gateway.sources import ModelStore
from gateway.specs import ModelSpec


@dataclass(frozen=True)
class ModelInfo:
    spec: ModelSpec
    present: bool
    size: int
    modified_at: datetime

    @property
    def name(self) -> str:
        return tagged_name(self.spec.name)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return capabilities_of(self.spec)

    @property
    def context_length(self) -> int | None:
        return self.spec.context_length

    @property
    def embedding_length(self) -> int | None:
        return self.spec.vector_width

    @property
    def dimensions(self) -> list[int] | None:
        """Advertised Matryoshka widths (any width 1..native is served); None if not resizable."""
        return getattr(self.spec, "advertised_dimensions", None)


class Catalog:
    """Registry models joined with what is on disk."""

    def __init__(self, registry: Registry, store: ModelStore) -> None:
        self.registry = registry
        self.store = store

    def info(self, spec: ModelSpec) -> ModelInfo:
        present = self.store.is_present(spec)
        size = self.store.size(spec) if present else 0
        stamp = self.store.modified_at(spec) if present else 0.0
        return ModelInfo(spec, present, size, datetime.fromtimestamp(stamp, UTC))

    def available(self) -> list[ModelInfo]:
        """Models whose files are present, as Ollama lists what has been pulled."""
        return [info for info in map(self.info, self.registry) if info.present]

    def digest(self, spec: ModelSpec) -> str:
        return self.store.digest(spec) if self.store.is_present(spec) else ""

    def batching(self, spec: ModelSpec) -> str:
        """How the model's inputs are scheduled; reads the graph, so call it off the loop."""
        if not self.store.is_present(spec):
            return "unknown (not pulled)"
        if uses_dynamic_quantization(self.store.path_of(spec, "model")):
            return "one input per run: the graph quantizes activations dynamically"
        return "batched across requests (batch-invariant)"

    def state(self, spec: ModelSpec, loaded: bool) -> str:
        """loaded, ready (files present), or not pulled."""
        if loaded:
            return "loaded"
        return "ready" if self.store.is_present(spec) else "not pulled"
