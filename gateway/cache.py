"""Embedding cache: a model's answer for an input, by (model identity, output kind, variant,
input), bounded in bytes.

Two kinds of entry share it, so one byte budget and one hit rate cover both:
- pooled dense vectors (CachedEmbedding), cached before post-processing so one entry serves
  every `dimensions` and normalization; their variant is the task prefix put before the text;
- SPLADE vectors (CachedSparse), indices and weights as two arrays; their variant is what of a
  request changes them (SparseEncoder.cache_variant: the cut).
The kind of entry is part of the key, so a sparse entry never answers a dense lookup (nor the
reverse) whatever the model, variant and text. The model identity
(gateway.loaded.cache_identity) hashes every file's sha256, the registry entry and the
placement, so a re-pulled model, another entry over the same weights, or the same weights at
another precision never serves another's vectors.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import msgspec
import numpy as np
from cachetools import LRUCache

from gateway import metrics
from gateway.encoders.sparse import SparseVector

# Bookkeeping per entry beyond its arrays (key, tuple, array headers), roughly.
ENTRY_OVERHEAD_BYTES = 200


@dataclass(frozen=True, slots=True)
class CachedEmbedding:
    """A text's pooled vector, before post-processing."""

    vector: np.ndarray
    tokens: int
    truncated: bool

    @property
    def nbytes(self) -> int:
        return self.vector.nbytes


@dataclass(frozen=True, slots=True)
class CachedSparse:
    """A text's SPLADE vector: its non-zero weights only (8 bytes each)."""

    vector: SparseVector
    tokens: int
    truncated: bool

    @property
    def nbytes(self) -> int:
        return self.vector.nbytes


Entry = CachedEmbedding | CachedSparse
EntryT = TypeVar("EntryT", CachedEmbedding, CachedSparse)
# The kind of entry, hashed into its key: kinds never share a key.
KIND_TAGS: dict[type[Entry], bytes] = {CachedEmbedding: b"pooled", CachedSparse: b"sparse"}


class CacheView(msgspec.Struct):
    enabled: bool
    max_bytes: int
    used_bytes: int
    entries: int


def _entry_size(entry: Entry) -> int:
    return entry.nbytes + ENTRY_OVERHEAD_BYTES


def _field(part: bytes) -> bytes:
    """A key field with its length in front, so no two field lists hash the same bytes."""
    return len(part).to_bytes(8, "little") + part


class EmbeddingCache:
    """A thread-safe LRU of models' answers for single inputs; `max_bytes=0` turns it off."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: LRUCache[bytes, Entry] | None = (
            LRUCache(maxsize=max_bytes, getsizeof=_entry_size) if max_bytes > 0 else None
        )
        self._lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return self._entries is not None

    @staticmethod
    def keys(
        kind: type[Entry], model_identity: str, variants: Sequence[str], texts: Sequence[str]
    ) -> list[bytes]:
        """The key of each text's `kind` of entry: the model, the kind, the text's variant
        (whatever of the request changes its answer) and the text, each field length-prefixed.
        The fields before the text are hashed once per distinct variant."""
        head = _field(model_identity.encode()) + _field(KIND_TAGS[kind])
        bases: dict[str, hashlib.blake2b] = {}
        keys = []
        for variant, text in zip(variants, texts, strict=True):
            base = bases.get(variant)
            if base is None:
                fields = head + _field(variant.encode())
                base = bases[variant] = hashlib.blake2b(fields, digest_size=20)
            digest = base.copy()
            digest.update(text.encode())  # last: its length needs no prefix
            keys.append(digest.digest())
        return keys

    def lookup(
        self,
        kind: type[EntryT],
        model_identity: str,
        variants: Sequence[str],
        texts: Sequence[str],
    ) -> tuple[list[bytes], list[EntryT | None]]:
        """Each text's key and entry (None where absent); not counted until `served`. A cache
        that is off hashes nothing and answers no keys."""
        if self._entries is None:
            return [], [None] * len(texts)
        keys = self.keys(kind, model_identity, variants, texts)
        with self._lock:
            found = [self._entries.get(key) for key in keys]
        # The kind is in the key, so another kind of entry is never found; narrowed for mypy.
        return keys, [entry if isinstance(entry, kind) else None for entry in found]

    def served(self, model: str, hits: int, misses: int) -> None:
        """Count lookups once their request has its vectors (Pipelines.served): one refused
        afterwards (a full queue, an unloaded model, an input too long for truncate: false),
        whose run failed, or whose client left is not counted, so the hit rate is that of the
        answered inputs."""
        self.hits[model] += hits
        self.misses[model] += misses
        metrics.cache_lookups(model, hits, misses)

    def put_many(self, keys: Sequence[bytes], entries: Sequence[Entry]) -> None:
        """Keep `entries`; one larger than the whole budget is left out (the LRU would raise
        ValueError for it: a long text's SPLADE vector under a small budget)."""
        if self._entries is None:
            return
        with self._lock:
            for key, entry in zip(keys, entries, strict=True):
                if _entry_size(entry) <= self.max_bytes:
                    self._entries[key] = entry

    def complete(
        self,
        keys: Sequence[bytes],
        found: list[EntryT | None],
        missing: Sequence[int],
        fresh: Sequence[EntryT],
    ) -> list[EntryT]:
        """After a `lookup` (its `keys` and `found`) and a run of the `missing` inputs: keep the
        `fresh` entries (when the lookup gave keys) and answer every input's entry, in order."""
        if keys:
            self.put_many([keys[i] for i in missing], fresh)
        for index, entry in zip(missing, fresh, strict=True):
            found[index] = entry
        return [entry for entry in found if entry is not None]

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
