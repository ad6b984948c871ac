"""The sparse service: TEI's /embed_sparse, texts -> SPLADE vectors (vocabulary id -> weight).

A request that names no model gets the registry's sparse model (default_sparse_model), else its
default model, which then answers the 400 that says what it can do. A text whose vector is in
the embedding cache (keyed by the model, the cut, and the text; counted in the same hit rate as
dense vectors) is not run; the others are tokenized (in a thread when long), cut at the model's
context length (refused instead with truncate: false, before anything runs), run by the model's
Batcher together with other requests, finished into (index, value) pairs, and cached. The
embedding routes refuse sparse models (gateway.services.embedding).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from gateway.cache import CachedSparse, EmbeddingCache
from gateway.encoders import Capability, EncodeOptions, SparseVector, capabilities_of
from gateway.encoders.base import missing_capability
from gateway.encoders.views import SparseEmbedder, sparse_embedder
from gateway.errors import InvalidRequest, UnsupportedInput
from gateway.inputs import TextInput
from gateway.manager import LoadedModel, ModelManager
from gateway.registry import Registry, names_with
from gateway.services.checks import check_finite, check_inputs, check_task, context_limit, too_long
from gateway.services.pipelines import finish_off_loop, prepare_off_loop_if_large
from gateway.services.types import EmbedRequest, named_model
from gateway.settings import Settings
from gateway.specs import ModelSpec


@dataclass
class SparseResult:
    spec: ModelSpec
    vectors: list[SparseVector]
    token_counts: list[int]
    truncated: list[int]
    load_seconds: float = 0.0
    total_seconds: float = 0.0


class SparseService:
    def __init__(
        self, registry: Registry, models: ModelManager, settings: Settings, cache: EmbeddingCache
    ) -> None:
        self.registry = registry
        self.models = models
        self.settings = settings
        self.cache = cache

    @property
    def default_model(self) -> str:
        return self.registry.default_sparse_model or self.registry.default_model

    async def embed(self, request: EmbedRequest) -> SparseResult:
        started = time.perf_counter()
        name = named_model(request.model) or self.default_model
        if not name.strip():
            raise InvalidRequest("model is required", param="model")
        resolved = self.registry.resolve(name)
        spec = resolved.spec
        capabilities = capabilities_of(spec)
        if Capability.EMBED_SPARSE not in capabilities:  # refused before the model loads
            raise missing_capability(spec.name, capabilities, "give sparse vectors", self._hint())
        inputs = [x for x in request.inputs if isinstance(x, TextInput)]
        if len(inputs) != len(request.inputs):
            raise UnsupportedInput("sparse vectors are of texts only", param=request.input_param)
        check_inputs(inputs, self.settings, request.input_param, listed=request.input_listed)
        texts = [x.text for x in inputs]
        options = EncodeOptions(
            task=check_task(spec, request.task or resolved.task),
            limit=context_limit(spec, request.truncate, None),
        )
        async with self.models.use(spec, request.keep_alive) as (model, load_seconds):
            encoder = sparse_embedder(model.encoder)
            keys, found = self._lookup(model, encoder, texts, options)
            missing = [i for i, entry in enumerate(found) if entry is None]
            items = await prepare_off_loop_if_large(
                encoder.prepare, [texts[i] for i in missing], options
            )
            cut_items = {missing[k] for k, item in enumerate(items) if item.truncated}
            cut = [i for i, e in enumerate(found) if (e.truncated if e else i in cut_items)]
            if cut and not request.truncate:
                count = await asyncio.to_thread(encoder.count_tokens, texts[cut[0]], options)
                where = request.item(cut[0])
                raise too_long(where, encoder.token_limit(options), count, request.input_param)
            raw = await model.batcher.submit(items) if items else []
        vectors = await finish_off_loop(encoder.finish, raw, options)
        check_finite(*(vector.values for vector in vectors))
        fresh = [
            CachedSparse(vector, item.tokens, item.truncated)
            for vector, item in zip(vectors, items, strict=True)
        ]
        entries = self.cache.complete(keys, found, missing, fresh)
        if keys:
            # Counted once the request has its vectors, as dense lookups (Pipelines.served).
            self.cache.served(spec.name, len(keys) - len(missing), len(missing))
        return SparseResult(
            spec=spec,
            vectors=[entry.vector for entry in entries],
            token_counts=[entry.tokens for entry in entries],
            truncated=cut,
            load_seconds=load_seconds,
            total_seconds=time.perf_counter() - started,
        )

    def _lookup(
        self, model: LoadedModel, encoder: SparseEmbedder, texts: list[str], options: EncodeOptions
    ) -> tuple[list[bytes], list[CachedSparse | None]]:
        """Each text's cache key and cached vector (no keys when the cache is off)."""
        variants = [encoder.cache_variant(options)] * len(texts)
        return self.cache.lookup(CachedSparse, model.cache_id, variants, texts)

    def _hint(self) -> str:
        sparse = names_with(self.registry, Capability.EMBED_SPARSE)
        return f"sparse models here: {', '.join(sparse)}" if sparse else "no sparse model is served"
