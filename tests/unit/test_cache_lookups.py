"""Cache lookups are counted for served requests only: a request refused after its lookup (a
full queue, an unloaded model) or whose run failed must not move the hit rate."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from gateway.batching import InferenceError
from gateway.cache import EmbeddingCache
from gateway.encoders import EncodeOptions
from gateway.errors import Busy, GatewayError
from gateway.services.pipelines import Pipelines

MODEL = "cache-lookup-test"


@dataclass(frozen=True)
class Item:
    length: int
    tokens: int
    truncated: bool = False


class Embedder:
    def token_limit(self, options: EncodeOptions) -> int:
        return 256

    def prefixes_for(self, texts: list[str], task: str | None) -> list[str | None]:
        return [None] * len(texts)

    def prepare(self, texts: list[str], options: EncodeOptions) -> list[Item]:
        return [Item(len(text) + 2, len(text) + 2) for text in texts]

    def pool(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        return raw


class Batcher:
    def __init__(self) -> None:
        self.refusal: GatewayError | None = None

    async def submit(self, items: list[Item]) -> list[np.ndarray]:
        if self.refusal is not None:
            raise self.refusal
        return [np.full(4, item.length, dtype=np.float32) for item in items]


def counted(cache: EmbeddingCache) -> tuple[int, int, float, float]:
    def sample(result: str) -> float:
        labels = {"model": MODEL, "result": result}
        return REGISTRY.get_sample_value("gateway_cache_lookups_total", labels) or 0.0

    return cache.hits[MODEL], cache.misses[MODEL], sample("hit"), sample("miss")


def test_lookups_count_only_for_served_requests() -> None:
    cache = EmbeddingCache(1 << 20)
    pipelines = Pipelines(SimpleNamespace(), cache, None, None)  # type: ignore[arg-type]
    batcher = Batcher()
    model: Any = SimpleNamespace(spec=SimpleNamespace(name=MODEL), cache_id="id", batcher=batcher)
    request: Any = SimpleNamespace()
    before = counted(cache)

    def embed(texts: list[str]) -> None:
        job = pipelines._pooled(
            model, Embedder(), texts, EncodeOptions(), request, list(range(len(texts)))
        )  # type: ignore[arg-type]
        asyncio.run(job)

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
    embed(["a", "b"])  # all hits: served without a run
    assert moved() == (2, 2, 2, 2)
    assert cache.hit_rate(MODEL) == 0.5
