"""fastembed gets the texts sorted by length, as every in-process row does, and its row records
the padding that order gave (it pads each batch to its longest text, in the order given)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from bench.fastembed_worker import embed_sorted, padding_ratio


class Counter:
    """tokenizers.Tokenizer's encode_batch: one token per word."""

    def encode_batch(self, texts: list[str]) -> list[SimpleNamespace]:
        return [SimpleNamespace(ids=text.split()) for text in texts]


class FakeFastEmbed:
    """TextEmbedding.embed: a vector per text (its word count), batches recorded."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def embed(self, texts: list[str], batch_size: int):  # type: ignore[no-untyped-def]
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            self.batches.append(batch)
            yield from (np.array([len(t.split()), 1.0], dtype=np.float32) for t in batch)


TEXTS = ["a " * 30, "b", "c " * 29, "d d"]  # long, short, long, short: input order pads 2 ways


def test_fastembed_sees_length_sorted_batches_and_vectors_keep_input_order() -> None:
    model = FakeFastEmbed()
    vectors, wall, ratio = embed_sorted(model, Counter(), TEXTS, batch=2)
    assert [len(b[0].split()) for b in model.batches] == [1, 29]  # short ones together
    assert vectors[:, 0].tolist() == [30, 1, 29, 2]  # back in input order
    assert wall >= 0 and ratio == padding_ratio([1, 2, 29, 30], 2)
    assert ratio < padding_ratio([30, 1, 29, 2], 2)  # what input order would have padded


def test_padding_ratio_counts_each_batch_padded_to_its_longest() -> None:
    assert padding_ratio([1, 3], 2) == 6 / 4
    assert padding_ratio([1, 3], 1) == 1.0
