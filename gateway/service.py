"""The middle of the gateway: validate a request against its model, run it, shape the result.

API adapters build an EmbedRequest from their wire format and render the EmbedResult back; they
never see tensors. Encoders never see requests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from gateway.cache import CachedEmbedding, EmbeddingCache
from gateway.encoders.text import TextEncoder, postprocess
from gateway.errors import InputTooLong, InvalidRequest, UnsupportedInput
from gateway.manager import LoadedModel, ModelManager
from gateway.registry import AnySpec, Registry, Resolved, TextModelSpec
from gateway.settings import Settings


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    inputs: list[str]
    task: str | None = None
    dimensions: int | None = None
    truncate: bool = True
    keep_alive: float | None = None
    # Ollama's legacy /api/embeddings returns vectors without L2 normalization.
    normalize: bool = True


@dataclass
class EmbedResult:
    spec: AnySpec
    vectors: np.ndarray
    token_counts: list[int]
    truncated: list[int] = field(default_factory=list)
    load_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


class EmbeddingService:
    def __init__(
        self,
        registry: Registry,
        manager: ModelManager,
        settings: Settings,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.registry = registry
        self.manager = manager
        self.settings = settings
        self.cache = cache or EmbeddingCache(0)

    def resolve(self, name: str) -> Resolved:
        if not name or not name.strip():
            raise InvalidRequest("model is required", param="model")
        return self.registry.resolve(name)

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        started = time.perf_counter()
        resolved = self.resolve(request.model)
        spec = self.text_spec(resolved)
        task = self.check_task(spec, request.task or resolved.task)
        dimensions = self.check_dimensions(spec, request.dimensions)
        self.check_inputs(request.inputs)
        async with self.manager.use(spec, request.keep_alive) as (model, load_seconds):
            entries = await self._pooled(model, request.inputs, task) if request.inputs else []
        too_long = [i for i, entry in enumerate(entries) if entry.truncated]
        if too_long and not request.truncate:
            raise InputTooLong(
                f"input[{too_long[0]}] is longer than the context length of {spec.max_tokens} "
                "tokens (the input length exceeds the context length); "
                "send truncate: true to cut it",
                param="input",
            )
        pooled = np.stack([e.vector for e in entries]) if entries else np.zeros((0, spec.dim))
        vectors = postprocess(
            pooled,
            layer_norm=spec.layer_norm,
            dimensions=dimensions,
            normalize=request.normalize and spec.normalize,
        )
        if not np.isfinite(vectors).all():
            raise InvalidRequest("the model produced NaN or infinite values for this input")
        return EmbedResult(
            spec=spec,
            vectors=vectors,
            token_counts=[entry.tokens for entry in entries],
            truncated=too_long,
            load_seconds=load_seconds,
            total_seconds=time.perf_counter() - started,
        )

    async def _pooled(
        self, model: LoadedModel, texts: list[str], task: str | None
    ) -> list[CachedEmbedding]:
        """Pooled vectors of `texts`: from the cache where present, the rest run as one job."""
        encoder = model.encoder
        assert isinstance(encoder, TextEncoder)
        keys = [self.cache.key(model.digest, encoder.prefix(task), text) for text in texts]
        found = self.cache.get_many(model.spec.name, keys)
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            items = await asyncio.to_thread(
                encoder.tokenize, [texts[i] for i in missing], task=task
            )
            outputs = await model.batcher.submit(items)
            fresh = [
                CachedEmbedding(np.array(output, dtype=np.float32), item.length, item.truncated)
                for item, output in zip(items, outputs, strict=True)
            ]
            self.cache.put_many([keys[i] for i in missing], fresh)
            for index, entry in zip(missing, fresh, strict=True):
                found[index] = entry
        return found  # type: ignore[return-value]

    # -- validation against the model ---------------------------------------------------------

    @staticmethod
    def text_spec(resolved: Resolved) -> TextModelSpec:
        spec = resolved.spec
        if not isinstance(spec, TextModelSpec):
            raise UnsupportedInput(
                f"model '{spec.name}' is a {spec.kind} model and does not embed text",
                param="model",
            )
        return spec

    @staticmethod
    def check_task(spec: AnySpec, task: str | None) -> str | None:
        if task is None or not spec.tasks or task in spec.tasks:
            return task
        raise InvalidRequest(
            f"model '{spec.name}' has no task {task!r}; choose one of {list(spec.tasks)}",
            param="task",
        )

    @staticmethod
    def check_dimensions(spec: TextModelSpec, dimensions: int | None) -> int:
        if dimensions is None:
            return spec.dim
        if dimensions not in spec.allowed_dimensions:
            raise InvalidRequest(
                f"dimensions {dimensions} is not supported by model '{spec.name}'; "
                f"choose one of {spec.allowed_dimensions}",
                param="dimensions",
            )
        return dimensions

    def check_inputs(self, inputs: list[str]) -> None:
        limit = self.settings.max_inputs
        if len(inputs) > limit:
            raise InvalidRequest(
                f"too many inputs: {len(inputs)} (at most {limit} per request)", param="input"
            )
        longest = self.settings.max_input_chars
        for index, text in enumerate(inputs):
            if not text:
                raise InvalidRequest(f"input[{index}] is an empty string", param="input")
            if len(text) > longest:
                raise InvalidRequest(
                    f"input[{index}] has {len(text)} characters, more than the {longest} allowed",
                    param="input",
                )
