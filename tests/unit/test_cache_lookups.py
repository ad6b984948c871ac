"""Cache lookups are counted for answered requests only: a request refused after its lookup (a
full queue, an unloaded model, an input too long for truncate: false) or whose run failed must
not move the hit rate.

And an entry owns its vector: the cache keeps entries for as long as the LRU allows, so a view
would keep its request's (or a batch's) whole pooled array alive as long. Pipelines caches the
rows the run hands over as they are, so those must own their memory (TextEncoder.run copies
them: tests/unit/test_run_outputs_own_memory.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from gateway.batching import InferenceError
from gateway.cache import CachedEmbedding, EmbeddingCache
from gateway.encoders import Capability, EncodeOptions
from gateway.errors import Busy, GatewayError, InputTooLong
from gateway.services.pipelines import Pipelines

MODEL = "cache-lookup-test"
LIMIT = 8  # tokens; a longer text is cut (and refused with truncate: false)


@dataclass(frozen=True)
class Item:
    length: int
    tokens: int
    truncated: bool = False


class Embedder:
    capabilities = frozenset({Capability.EMBED_TEXT})

    def token_limit(self, options: EncodeOptions) -> int:
        return LIMIT

    def prefixes_for(self, texts: list[str], task: str | None) -> list[str]:
        return [""] * len(texts)

    def prepare(self, texts: list[str], options: EncodeOptions) -> list[Item]:
        return [Item(len(t) + 2, min(len(t) + 2, LIMIT), len(t) + 2 > LIMIT) for t in texts]

    def count_tokens(self, text: str, options: EncodeOptions) -> int:
        return len(text) + 2

    def pool(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        return raw

    def finish_pooled(self, pooled: np.ndarray, options: EncodeOptions) -> np.ndarray:
        return pooled


class Batcher:
    def __init__(self) -> None:
        self.refusal: GatewayError | None = None

    async def submit(self, items: list[Item]) -> list[np.ndarray]:
        if self.refusal is not None:
            raise self.refusal
        return [np.full(4, item.length, dtype=np.float32) for item in items]


class Models:
    def __init__(self, model: Any) -> None:
        self.model = model

    @asynccontextmanager
    async def use(self, spec: Any, keep_alive: float | None) -> AsyncIterator[tuple[Any, float]]:
        yield self.model, 0.0


def counted(cache: EmbeddingCache) -> tuple[int, int, float, float]:
    def sample(result: str) -> float:
        labels = {"model": MODEL, "result": result}
        return REGISTRY.get_sample_value("gateway_cache_lookups_total", labels) or 0.0

    return cache.hits[MODEL], cache.misses[MODEL], sample("hit"), sample("miss")


def test_lookups_count_only_for_answered_requests() -> None:
    cache = EmbeddingCache(1 << 20)
    batcher = Batcher()
    spec: Any = SimpleNamespace(name=MODEL, vector_width=4)
    model = SimpleNamespace(spec=spec, cache_id="id", batcher=batcher, encoder=Embedder())
    pipelines = Pipelines(Models(model), cache, None, None)  # type: ignore[arg-type]
    before = counted(cache)

    def embed(texts: list[str], truncate: bool = True) -> None:
        request: Any = SimpleNamespace(
            truncate=truncate, keep_alive=None, input_param="input", item=lambda i: f"input[{i}]"
        )
        indices = list(range(len(texts)))
        inputs = [SimpleNamespace(text=text) for text in texts]
        job = pipelines.texts(spec, inputs, indices, EncodeOptions(), request)
        pipelines.served([asyncio.run(job)])

    def moved() -> tuple[float, ...]:
        return tuple(now - then for now, then in zip(counted(cache), before, strict=True))

    embed(["a", "b"])  # served: two misses
    assert moved() == (0, 2, 0, 2)
    # Refused after the lookup ("a" a hit, "c" a miss): the 503/429, and a failed run's 500.
    for refusal in (Busy("queue full"), Busy("the model was unloaded"), InferenceError("x")):
        batcher.refusal = refusal
        with pytest.raises(GatewayError):
            embed(["a", "c"])
        assert moved() == (0, 2, 0, 2), refusal
    batcher.refusal = None
    # Too long for truncate: false once its vector is computed ("a" a hit, the long one a miss),
    # and again from the cache (both hits): refused, so not counted.
    for _ in range(2):
        with pytest.raises(InputTooLong):
            embed(["a", "a long text"], truncate=False)
        assert moved() == (0, 2, 0, 2)
    embed(["a", "b"])  # all hits: served without a run
    assert moved() == (2, 2, 2, 2)
    assert cache.hit_rate(MODEL) == 0.5


def test_cached_vectors_own_their_memory() -> None:
    cache = EmbeddingCache(1 << 20)
    spec: Any = SimpleNamespace(name=MODEL, vector_width=4)
    model = SimpleNamespace(spec=spec, cache_id="id", batcher=Batcher(), encoder=Embedder())
    pipelines = Pipelines(Models(model), cache, None, None)  # type: ignore[arg-type]
    request: Any = SimpleNamespace(truncate=True, keep_alive=None, input_param="input")
    texts = ["a", "bb", "ccc"]
    inputs = [SimpleNamespace(text=text) for text in texts]
    asyncio.run(pipelines.texts(spec, inputs, [0, 1, 2], EncodeOptions(), request))
    _, entries = cache.lookup(CachedEmbedding, "id", [""] * len(texts), texts)
    for entry, text in zip(entries, texts, strict=True):
        assert entry is not None
        assert entry.vector.base is None and entry.vector.nbytes == 4 * 4
        assert entry.vector[0] == len(text) + 2  # the stand-in's item length: text + 2 specials
