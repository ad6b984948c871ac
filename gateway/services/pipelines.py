"""One model's share of an embedding request: prepare -> Batcher (run) -> finish.

`Pipelines.texts` embeds some of a request's inputs with a text embedder, serving repeated
inputs from the embedding cache of pooled vectors (pooled before post-processing, so one entry
serves every width and normalization). `Pipelines.images` fetches, decodes and prepares images
before it takes the model, then embeds them. Both hold the model through the manager only while
it runs, and finish off the event loop when the arrays are large.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from gateway.cache import CachedEmbedding, EmbeddingCache
from gateway.encoders import EncodeOptions
from gateway.encoders.views import TextEmbedder, image_embedder, text_embedder
from gateway.errors import EmptyInput
from gateway.manager import LoadedModel, ModelManager
from gateway.media import FetchPolicy, ImagePolicy, read_images
from gateway.services.checks import check_finite, too_long
from gateway.services.image_preparers import ImagePreparers
from gateway.services.types import EmbedRequest
from gateway.specs import ModelSpec

T = TypeVar("T")

# Below this many characters in a request, tokenizing on the event loop beats a thread hop.
INLINE_TOKENIZE_CHARS = 2048
# Below this many raw floats, finishing (pooling, projection) on the event loop beats a hop.
INLINE_FINISH_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class Lookups:
    """A part's embedding cache lookups, counted once the whole request is answered."""

    model: str
    hits: int
    misses: int


@dataclass
class Part:
    """The vectors of some of a request's inputs, and where they go."""

    indices: list[int]
    vectors: np.ndarray
    tokens: list[int]
    truncated: list[int]
    load_seconds: float
    lookups: Lookups | None = None  # None: the cache was not asked


async def finish_off_loop(
    finish: Callable[[Sequence[np.ndarray], EncodeOptions], T],
    raw: Sequence[np.ndarray],
    options: EncodeOptions,
) -> T:
    """Finish in a worker thread when the raw arrays are large (ColBERT projections, long
    hidden states); small ones finish here, cheaper than the hop (~300 us)."""
    if sum(a.size for a in raw) <= INLINE_FINISH_ELEMENTS:
        return finish(raw, options)
    return await asyncio.to_thread(finish, raw, options)


async def prepare_off_loop_if_large(
    prepare: Callable[[Sequence[str], EncodeOptions], T], texts: list[str], options: EncodeOptions
) -> T:
    """Tokenize in a worker thread, unless the texts are so short that the thread hop would
    cost more than the work (a short query tokenizes in ~30 us; a hop costs ~300 us)."""
    if sum(map(len, texts)) <= INLINE_TOKENIZE_CHARS:
        return prepare(texts, options)
    return await asyncio.to_thread(prepare, texts, options)


class Pipelines:
    def __init__(
        self,
        models: ModelManager,
        cache: EmbeddingCache,
        fetch_policy: FetchPolicy,
        image_policy: ImagePolicy,
    ) -> None:
        self.models = models
        self.preparers = ImagePreparers(models)
        self.cache = cache
        self.fetch_policy = fetch_policy
        self.image_policy = image_policy

    async def texts(
        self,
        spec: ModelSpec,
        inputs: list[Any],
        indices: list[int],
        options: EncodeOptions,
        request: EmbedRequest,
    ) -> Part:
        texts = [inputs[i].text for i in indices]
        async with self.models.use(spec, request.keep_alive) as (model, load_seconds):
            embedder = text_embedder(model.encoder)
            entries, lookups = (
                await self._pooled(model, embedder, texts, options, request, indices)
                if texts
                else ([], None)
            )
            over = [k for k, entry in enumerate(entries) if entry.truncated]
            if over and not request.truncate:
                count = await asyncio.to_thread(embedder.count_tokens, texts[over[0]], options)
                where = request.item(indices[over[0]])
                raise too_long(where, embedder.token_limit(options), count, request.input_param)
        cut = [indices[k] for k in over]
        width = spec.vector_width or 0
        # np.array, not np.stack: the same rows, without stack's ~2.4 us of checks per request.
        pooled = np.array([e.vector for e in entries]) if entries else np.zeros((0, width))
        vectors = embedder.finish_pooled(pooled, options)
        check_finite(vectors)
        return Part(indices, vectors, [e.tokens for e in entries], cut, load_seconds, lookups)

    def served(self, parts: Sequence[Part]) -> None:
        """Count the cache lookups of a request whose parts all have their vectors: one refused
        on the way (an input too long for truncate: false, a full queue) or whose run failed
        must not move the hit rate."""
        for part in parts:
            if part.lookups is not None:
                lookups = part.lookups
                self.cache.served(lookups.model, lookups.hits, lookups.misses)

    async def _pooled(
        self,
        model: LoadedModel,
        embedder: TextEmbedder,
        texts: list[str],
        options: EncodeOptions,
        request: EmbedRequest,
        indices: list[int],
    ) -> tuple[list[CachedEmbedding], Lookups | None]:
        """Pooled vectors of `texts` (the request's inputs at `indices`): from the cache where
        present (it holds vectors cut at the model's own max_tokens only), the rest run as one
        job; and the lookups, for `served` to count."""
        keys: list[bytes] = []
        found: list[CachedEmbedding | None] = [None] * len(texts)
        if self.cache.enabled and options.limit in (None, embedder.token_limit(EncodeOptions())):
            # Keyed by the prefix put before each text, so by exactly what is embedded.
            prefixes = embedder.prefixes_for(texts, options.task)
            keys, found = self.cache.lookup(CachedEmbedding, model.cache_id, prefixes, texts)
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            items = await prepare_off_loop_if_large(
                embedder.prepare, [texts[i] for i in missing], options
            )
            # A blank text under a tokenizer that adds no special tokens: nothing to pool.
            for i, item in zip(missing, items, strict=True):
                if item.length == 0:
                    raise EmptyInput(
                        f"{request.item(indices[i])} has no tokens for model "
                        f"'{model.spec.name}' (it is blank)",
                        param=request.input_param,
                    )
            raw = await model.batcher.submit(items)
            # run() hands over each input's pooled row in a buffer of its own (own_rows), so an
            # entry, which outlives its request, keeps no batch mate's row alive; float32 as
            # the cache holds it (a copy only for another dtype, CUDA fp16's).
            fresh = [
                CachedEmbedding(np.asarray(row, dtype=np.float32), item.tokens, item.truncated)
                for item, row in zip(items, raw, strict=True)
            ]
        else:
            fresh = []
        lookups = Lookups(model.spec.name, len(keys) - len(missing), len(missing)) if keys else None
        return self.cache.complete(keys, found, missing, fresh), lookups

    async def images(
        self,
        spec: ModelSpec,
        inputs: list[Any],
        indices: list[int],
        options: EncodeOptions,
        request: EmbedRequest,
    ) -> Part:
        references = [inputs[i].reference for i in indices]

        async def read(convert: Callable[[Image.Image], Any]) -> list[Any]:
            return await read_images(
                references,
                fetch=self.fetch_policy,
                image=self.image_policy,
                convert=convert,
                param=request.input_param,
                indices=indices if request.input_listed else None,
            )

        # Fetch, decode and prepare before taking the model: slow URLs (seconds each, a
        # request's worth queued behind the fetch concurrency) must not keep it in flight
        # (not evictable, its keep_alive not running) while it does nothing.
        prepare = await self.preparers.get(spec)
        if prepare is not None:
            items = await read(prepare)
        async with self.models.use(spec, request.keep_alive) as (model, load_seconds):
            embedder = image_embedder(model.encoder)
            if prepare is None:  # the model's files came with this load: prepare with it
                items = await read(embedder.prepare_image)
            raw = await model.batcher.submit(items)
        vectors = await finish_off_loop(embedder.finish, raw, options)
        check_finite(vectors)
        return Part(indices, vectors, [0] * len(indices), [], load_seconds)
