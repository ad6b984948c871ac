"""SparseEncoder against sentence-transformers' SparseEncoder (and SPLADE's formula in torch) on
the same weights.

A tiny random BertForMaskedLM (tools/splade.py) is saved, exported to ONNX once (cached under
.cache/test-models/), and served by the gateway's SparseEncoder; token ids must be the
transformers tokenizer's, and each text's sparse vector must have the reference's indices and
its values to fp32 precision, whether the text runs alone or in a batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.encoders import EncodeOptions, SparseEncoder, SparseVector, build_encoder
from gateway.registry import SparseModelSpec, parse_entry
from gateway.runtime import Runtime
from tools.splade import (
    LONG,
    MAX_TOKENS,
    TEXTS,
    sentence_transformers_weights,
    splade_dir,
    splade_entry,
    torch_weights,
)

# Weights from two runtimes: ONNX Runtime and torch sum the logits' products in other orders,
# so a logit (about 5 to 10 here) differs by a few fp32 ulps (~1e-6), and so does its weight,
# whatever the weight's size: a tiny weight (log(1 + x) of a logit just above 0) can differ by
# 1e-3 relatively. Hence an absolute bound, and the relative one for weights that count.
ATOL = 1e-5
RTOL = 1e-5
LARGE = 0.5  # weights from here up are held to RTOL alone


@pytest.fixture(scope="module")
def model_dir(default_model_dir: Path) -> Path:
    return splade_dir(default_model_dir / "tokenizer.json")  # bert-base-uncased WordPiece


def load(model_dir: Path, **overrides: object) -> SparseEncoder:
    spec = parse_entry("tiny-splade", splade_entry(model_dir, **overrides))
    assert isinstance(spec, SparseModelSpec)
    paths = {role: model_dir / ref.path for role, ref in spec.files.items()}
    encoder = build_encoder(spec, paths, Runtime(device="cpu", threads=1))
    assert isinstance(encoder, SparseEncoder)
    return encoder


def encode(encoder: SparseEncoder, texts: list[str]) -> list[SparseVector]:
    options = EncodeOptions()
    return encoder.finish(encoder.run(encoder.prepare(texts, options)), options)


def compare(ours: list[SparseVector], reference: np.ndarray) -> tuple[float, float]:
    """Indices must be equal, values within ATOL + RTOL; returns (largest absolute difference,
    largest relative difference of the weights >= LARGE)."""
    absolute = relative = 0.0
    for row, vector in enumerate(ours):
        expected = np.flatnonzero(reference[row])
        assert vector.indices.tolist() == expected.tolist(), f"texts[{row}]: other indices"
        want = reference[row, expected].astype(np.float64)
        np.testing.assert_allclose(vector.values, want, rtol=RTOL, atol=ATOL)
        diff = np.abs(vector.values.astype(np.float64) - want)
        absolute = max(absolute, float(diff.max(initial=0.0)))
        large = want >= LARGE
        relative = max(relative, float((diff[large] / want[large]).max(initial=0.0)))
    return absolute, relative


def test_token_ids_are_the_transformers_tokenizers(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir / "torch")
    items = load(model_dir).prepare(TEXTS, EncodeOptions())
    for row, item in enumerate(items):
        expected = tokenizer(TEXTS[row], truncation=True, max_length=MAX_TOKENS)["input_ids"]
        assert item.ids.tolist() == expected
        assert item.truncated == (row == LONG)


def test_sparse_vectors_match_sentence_transformers(model_dir: Path) -> None:
    reference = sentence_transformers_weights(model_dir, TEXTS, MAX_TOKENS)
    written_out = torch_weights(model_dir, TEXTS, MAX_TOKENS)
    np.testing.assert_allclose(written_out, reference, rtol=1e-6, atol=0)
    ours = encode(load(model_dir), TEXTS)
    absolute, relative = compare(ours, reference)
    assert relative <= RTOL, f"max relative diff of weights >= {LARGE}: {relative}"
    # Realistic sparsity, so that the comparison means something: tens to hundreds of ids.
    counts = [len(vector) for vector in ours]
    assert min(counts) > 50 and max(counts) < 1000, counts
    print(
        f"splade: {sum(counts)} weights over {len(TEXTS)} texts ({min(counts)}..{max(counts)} "
        f"each), indices identical; max abs diff {absolute:.1e}, max rel diff of weights >= "
        f"{LARGE} {relative:.1e}"
    )


def test_sum_pooling_matches_sentence_transformers(model_dir: Path) -> None:
    reference = sentence_transformers_weights(model_dir, TEXTS, MAX_TOKENS, pooling="sum")
    compare(encode(load(model_dir, pooling="sum"), TEXTS), reference)


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(model_dir: Path) -> None:
    encoder = load(model_dir)
    batched = encode(encoder, TEXTS)
    reordered = encode(encoder, TEXTS[::-1])[::-1]
    worst = 0.0
    for row, text in enumerate(TEXTS):
        (alone,) = encode(encoder, [text])
        for other in (batched[row], reordered[row]):
            assert other.indices.tolist() == alone.indices.tolist()
            diff = np.abs(other.values.astype(np.float64) - alone.values)
            worst = max(worst, float((diff / alone.values).max(initial=0.0)))
    # The design's batch contract (1e-5), relative, on every weight however small.
    assert worst <= RTOL, f"max relative diff alone vs batched {worst}"
    print(f"splade: alone vs batched, indices identical; max rel diff {worst:.1e}")


def test_a_shorter_context_cuts_as_transformers_does(model_dir: Path) -> None:
    encoder = load(model_dir)
    limit = 16
    options = EncodeOptions(limit=limit)
    items = encoder.prepare(TEXTS, options)
    counts = [encoder.count_tokens(text, options) for text in TEXTS]
    assert [item.truncated for item in items] == [count > limit for count in counts]
    assert sum(item.truncated for item in items) >= 2
    ours = encoder.finish(encoder.run(items), options)
    compare(ours, sentence_transformers_weights(model_dir, TEXTS, limit))
    from transformers import AutoTokenizer

    uncut = AutoTokenizer.from_pretrained(model_dir / "torch")(TEXTS[LONG])["input_ids"]
    assert encoder.count_tokens(TEXTS[LONG], options) == len(uncut)
