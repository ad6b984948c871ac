"""The embedding cache's keys and entries: dense and sparse entries of one model and text never
share a key, every field of a key counts, and a sparse entry is its two arrays in the byte
budget."""

from __future__ import annotations

import numpy as np

from gateway.cache import ENTRY_OVERHEAD_BYTES, CachedEmbedding, CachedSparse, EmbeddingCache
from gateway.encoders.sparse import from_pairs, nonzero_pairs

MODEL = "a" * 40  # a cache identity: hex


def keys(kind: type[CachedEmbedding | CachedSparse], variant: str, text: str) -> bytes:
    (key,) = EmbeddingCache.keys(kind, MODEL, [variant], [text])
    return key


def test_a_sparse_entry_never_shares_a_key_with_a_dense_one() -> None:
    for variant in ("", "limit=512"):
        assert keys(CachedSparse, variant, "text") != keys(CachedEmbedding, variant, "text")


def test_every_field_of_a_key_counts_and_fields_cannot_run_into_each_other() -> None:
    base = keys(CachedSparse, "limit=512", "text")
    assert keys(CachedSparse, "limit=512", "text") == base  # deterministic
    assert keys(CachedSparse, "limit=64", "text") != base  # the cut
    assert keys(CachedSparse, "limit=512", "text ") != base
    (other,) = EmbeddingCache.keys(CachedSparse, "b" * 40, ["limit=512"], ["text"])
    assert other != base
    # Without lengths, ("ab", "c") and ("a", "bc") would hash the same bytes.
    assert keys(CachedEmbedding, "search_query: ", "x") != keys(
        CachedEmbedding, "search_", "query: x"
    )
    assert keys(CachedEmbedding, "", "a") != keys(CachedEmbedding, "a", "")


def test_keys_of_a_batch_equal_keys_one_by_one() -> None:
    """The variant's fields are hashed once per distinct variant and copied per text."""
    variants, texts = ["q: ", "d: ", "q: ", "d: "], ["one", "two", "three", "one"]
    batch = EmbeddingCache.keys(CachedEmbedding, MODEL, variants, texts)
    alone = [keys(CachedEmbedding, v, t) for v, t in zip(variants, texts, strict=True)]
    assert batch == alone
    assert len(set(batch)) == 4


def test_lookup_finds_only_its_own_kind() -> None:
    cache = EmbeddingCache(1 << 20)
    vector = from_pairs(nonzero_pairs(np.array([0.0, 1.5, 0.0, 0.25], dtype=np.float32)))
    keys_sparse, found = cache.lookup(CachedSparse, MODEL, [""], ["t"])
    assert found == [None]
    cache.put_many(keys_sparse, [CachedSparse(vector, 3, False)])
    _, found = cache.lookup(CachedSparse, MODEL, [""], ["t"])
    assert found == [CachedSparse(vector, 3, False)]
    _, dense = cache.lookup(CachedEmbedding, MODEL, [""], ["t"])
    assert dense == [None]


def test_a_sparse_entry_counts_its_two_arrays_in_the_byte_budget() -> None:
    weights = np.zeros(30522, dtype=np.float32)
    weights[np.arange(0, 30522, 300)] = 1.0  # 102 non-zero weights
    vector = from_pairs(nonzero_pairs(weights))
    assert vector.indices.dtype == np.int32 and len(vector) == 102
    entry = CachedSparse(vector, 10, False)
    assert entry.nbytes == 102 * 8  # not the 30522-wide row, nor 12 bytes a weight
    cache = EmbeddingCache(1 << 20)
    keys_, _ = cache.lookup(CachedSparse, MODEL, [""], ["t"])
    cache.put_many(keys_, [entry])
    assert cache.view().used_bytes == 102 * 8 + ENTRY_OVERHEAD_BYTES
    # Cached arrays are shared between requests: nobody may write into them.
    assert not vector.values.flags.writeable and not vector.indices.flags.writeable


def test_an_off_cache_hashes_nothing() -> None:
    cache = EmbeddingCache(0)
    assert cache.lookup(CachedSparse, MODEL, ["", ""], ["a", "b"]) == ([], [None, None])
