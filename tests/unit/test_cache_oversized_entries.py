"""An entry larger than the whole cache budget is not cached, and does not fail its request.

cachetools' LRUCache raises ValueError("value too large") for an item bigger than its maxsize.
A SPLADE vector of a long text holds thousands of non-zero weights (up to 30522 x 8 bytes for
BERT's vocabulary), so a small GATEWAY_CACHE_BYTES that suits dense vectors turned a computed
/embed_sparse answer into a 500 at `put_many`."""

from __future__ import annotations

import numpy as np

from gateway.cache import ENTRY_OVERHEAD_BYTES, CachedEmbedding, CachedSparse, EmbeddingCache
from gateway.encoders.sparse import from_pairs, nonzero_pairs

MODEL = "a" * 40


def test_an_entry_over_the_budget_is_skipped_and_the_others_are_kept() -> None:
    budget = 4096
    cache = EmbeddingCache(budget)
    weights = np.zeros(30522, dtype=np.float32)
    weights[:2000] = 1.0  # 2,000 weights: 16,000 bytes, over the budget
    big = CachedSparse(from_pairs(nonzero_pairs(weights)), 500, False)
    small = CachedSparse(
        from_pairs(nonzero_pairs(np.array([0.0, 2.0], dtype=np.float32))), 3, False
    )
    keys, _ = cache.lookup(CachedSparse, MODEL, ["", ""], ["long", "short"])
    cache.put_many(keys, [big, small])  # no ValueError
    _, found = cache.lookup(CachedSparse, MODEL, ["", ""], ["long", "short"])
    assert found == [None, small]
    assert cache.view().used_bytes == small.nbytes + ENTRY_OVERHEAD_BYTES


def test_a_dense_vector_over_the_budget_is_skipped_too() -> None:
    cache = EmbeddingCache(1024)
    entry = CachedEmbedding(np.ones(1024, dtype=np.float32), 7, False)  # 4 KiB
    keys, _ = cache.lookup(CachedEmbedding, MODEL, [""], ["t"])
    cache.put_many(keys, [entry])
    assert cache.lookup(CachedEmbedding, MODEL, [""], ["t"])[1] == [None]
    assert cache.view().entries == 0
