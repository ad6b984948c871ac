"""Embedding cache: pooled vectors by (model identity, task prefix, input), bounded in bytes.

Pooled vectors are cached before post-processing, so one entry serves every `dimensions` and
normalization a client asks for. The model identity (gateway.loaded.cache_identity) hashes every
file's sha256, the registry entry and the placement, so a re-pulled model, another entry over
the same weights, or the same weights at another precision never serves another's vectors.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass

import msgspec
import numpy as np
from cachetools import LRUCache

from gateway import metrics

# Bookkeeping per entry beyond the vector itself (key, tuple, array header), roughly.
ENTRY_OVERHEAD_BYTES = 200


@dataclass(frozen=True, slots=True)
class CachedEmbedding:
    vector: np.ndarray
    tokens: int
    truncated: bool


class CacheView(msgspec.Struct):
    enabled: bool
    max_bytes: int
    used_bytes: int
    entries: int


def _entry_size(entry: CachedEmbedding) -> int:
    return entry.vector.nbytes + ENTRY_OVERHEAD_BYTES


class EmbeddingCache:
    """A thread-safe LRU of pooled vectors; `max_bytes=0` turns it off."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: LRUCache[bytes, CachedEmbedding] | None = (
            LRUCache(maxsize=max_bytes, getsizeof=_entry_size) if max_bytes > 0 else None
        )
        self._lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self._entries is not None

    @staticmethod
    def key(model_identity: str, task: str | None, data: str | bytes) -> bytes:
        raw = data.encode() if isinstance(data, str) else data
        digest = hashlib.blake2b(digest_size=20)
        digest.update(model_identity.encode())
        digest.update(b"\0" + (task or "").encode() + b"\0")
        digest.update(raw)
        return digest.digest()

    def get_many(self, keys: list[bytes]) -> list[CachedEmbedding | None]:
        """The entries of `keys` (None where absent); not counted until `served`."""
        if self._entries is None:
            return [None] * len(keys)
        with self._lock:
            return [self._entries.get(key) for key in keys]

    def served(self, model: str, hits: int, misses: int) -> None:
        """Count lookups once their request has its vectors (Pipelines.served): one refused
        afterwards (a full queue, an unloaded model, an input too long for truncate: false),
        whose run failed, or whose client left is not counted, so the hit rate is that of the
        answered inputs."""
        self.hits[model] += hits
        self.misses[model] += misses
        metrics.cache_lookups(model, hits, misses)

    def put_many(self, keys: list[bytes], entries: list[CachedEmbedding]) -> None:
        if self._entries is None:
            return
        with self._lock:
            for key, entry in zip(keys, entries, strict=True):
                self._entries[key] = entry

    def hit_rate(self, model: str) -> float | None:
        total = self.hits[model] + self.misses[model]
        return None if total == 0 else self.hits[model] / total

    def view(self) -> CacheView:
        entries = self._entries
        return CacheView(
            enabled=entries is not None,
            max_bytes=self.max_bytes,
            used_bytes=0 if entries is None else int(entries.currsize),
            entries=0 if entries is None else len(entries),
        )
