"""An embedding cache entry owns its vector: the cache keeps entries for as long as the LRU
allows, so a view would keep its request's (or a batch's) whole pooled array alive as long.
A guard: Pipelines caches the rows the run hands over as they are, so those must own their
memory (TextEncoder.run copies them: tests/unit/test_run_outputs_own_memory.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from gateway.cache import CachedEmbedding, EmbeddingCache
from gateway.encoders import Capability, EncodeOptions
from gateway.services.pipelines import Pipelines

WIDTH = 8


@dataclass(frozen=True)
class Item:
    length: int
    tokens: int
    truncated: bool = False


class Embedder:
    """A text embedder whose run (the Batcher below) hands over one buffer per row."""

    capabilities = frozenset({Capability.EMBED_TEXT})

    def token_limit(self, options: EncodeOptions) -> int:
        return 512

    def prefixes_for(self, texts: Sequence[str], task: str | None) -> list[str]:
        return [""] * len(texts)

    def prepare(self, texts: Sequence[str], options: EncodeOptions) -> list[Item]:
        return [Item(len(text), len(text)) for text in texts]

    def finish_pooled(self, pooled: np.ndarray, options: EncodeOptions) -> np.ndarray:
        return pooled


class Batcher:
    async def submit(self, items: Sequence[Item]) -> list[np.ndarray]:
        return [np.full(WIDTH, item.length, dtype=np.float32) for item in items]


class Models:
    def __init__(self, model: Any) -> None:
        self.model = model

    @asynccontextmanager
    async def use(self, spec: Any, keep_alive: float | None) -> AsyncIterator[tuple[Any, float]]:
        yield self.model, 0.0


def test_cached_vectors_own_their_memory() -> None:
    cache = EmbeddingCache(1 << 20)
    spec: Any = SimpleNamespace(name="m", vector_width=WIDTH)
    model = SimpleNamespace(spec=spec, cache_id="id", batcher=Batcher(), encoder=Embedder())
    pipelines = Pipelines(Models(model), cache, None, None)  # type: ignore[arg-type]
    request: Any = SimpleNamespace(truncate=True, keep_alive=None, input_param="input")
    texts = ["a", "bb", "ccc"]
    inputs = [SimpleNamespace(text=text) for text in texts]
    asyncio.run(pipelines.texts(spec, inputs, [0, 1, 2], EncodeOptions(), request))
    _, entries = cache.lookup(CachedEmbedding, "id", [""] * len(texts), texts)
    for entry, text in zip(entries, texts, strict=True):
        assert entry is not None
        assert entry.vector.base is None and entry.vector.nbytes == WIDTH * 4
        assert entry.vector[0] == len(text)
