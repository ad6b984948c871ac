"""SPLADE pooling without model files: logits of a padded batch -> one weight per vocabulary id,
against the masked formula as sentence-transformers' SpladePooling states it (mask the logits,
relu, log1p, then max or sum over the sequence), computed here in float64."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.backends.base import GraphInfo, TensorInfo
from gateway.encoders.sparse import (
    Activation,
    Pooling,
    from_pairs,
    nonzero_pairs,
    pick_logits_output,
    splade_pool,
)
from gateway.errors import ModelLoadError
from gateway.registry import RegistryError, parse_entry

VOCAB = 50
LENGTHS = [7, 3, 1]


def padded_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits [3, 7, VOCAB] with padding rows full of large logits (which must not count), and
    the attention mask."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(-1.0, 2.0, (len(LENGTHS), max(LENGTHS), VOCAB)).astype(np.float32)
    mask = np.zeros(logits.shape[:2], dtype=np.int64)
    for row, length in enumerate(LENGTHS):
        mask[row, :length] = 1
        logits[row, length:] = 50.0
    logits[:, :, 0] = -3.0  # a column no token activates: its weight is 0 and it is dropped
    return logits, mask


def masked_reference(
    logits: np.ndarray, mask: np.ndarray, pooling: Pooling, activation: Activation
) -> np.ndarray:
    masked = logits.astype(np.float64) * mask[..., None]
    weights = np.log1p(np.maximum(masked, 0))
    if activation == "log1p_relu":
        weights = np.log1p(weights)
    return weights.max(axis=1) if pooling == "max" else weights.sum(axis=1)


@pytest.mark.parametrize("pooling", ["max", "sum"])
@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
def test_pooling_matches_the_masked_formula(pooling: Pooling, activation: Activation) -> None:
    logits, mask = padded_batch()
    expected = masked_reference(logits, mask, pooling, activation)
    for row, length in enumerate(LENGTHS):
        ours = splade_pool(logits[row, :length], pooling, activation)
        assert ours.dtype == np.float32 and ours.shape == (VOCAB,)
        np.testing.assert_allclose(ours, expected[row], rtol=1e-6, atol=0)
        assert ours[0] == 0.0


def test_max_pooling_reduces_before_the_activation_without_changing_a_bit() -> None:
    """relu and log1p never decrease: transforming the max is transforming every logit."""
    logits, _ = padded_batch(seed=3)
    rows = logits[0, : LENGTHS[0]]
    everywhere = np.log1p(np.maximum(rows, 0)).max(axis=0)
    assert np.array_equal(splade_pool(rows, "max", "relu"), everywhere)


def test_a_sparse_vector_keeps_the_non_zero_weights_in_index_order() -> None:
    weights = np.array([0.0, 0.5, 0.0, 0.0, 1.25, 1e-30, 0.0], dtype=np.float32)
    vector = from_pairs(nonzero_pairs(weights))
    assert vector.indices.tolist() == [1, 4, 5]
    assert vector.indices.dtype == np.int32 and vector.values.dtype == np.float32
    assert vector.values.tolist() == [0.5, 1.25, np.float32(1e-30)]
    assert len(vector) == 3
    empty = from_pairs(nonzero_pairs(np.zeros(4, dtype=np.float32)))
    assert len(empty) == 0 and empty.values.shape == (0,)


def graph(*outputs: TensorInfo) -> GraphInfo:
    ids = TensorInfo("input_ids", ("batch", "sequence"), "tensor(int64)")
    return GraphInfo((ids,), outputs, dynamic_quantization=False)


def test_the_logits_output_is_found_and_checked() -> None:
    logits = TensorInfo("logits", ("batch", "sequence", 30522), "tensor(float)")
    hidden = TensorInfo("last_hidden_state", ("batch", "sequence", 64), "tensor(float)")
    assert pick_logits_output(graph(hidden, logits), None, "m", 30522) == "logits"
    assert pick_logits_output(graph(logits), None, "m", None) == "logits"
    renamed = TensorInfo("scores", ("batch", "sequence", 30522), "tensor(float)")
    assert pick_logits_output(graph(renamed), None, "m", None) == "scores"
    with pytest.raises(ModelLoadError, match="30522 wide, but vocab_size is 100"):
        pick_logits_output(graph(logits), None, "m", 100)
    with pytest.raises(ModelLoadError, match="'nope' is not one of"):
        pick_logits_output(graph(logits), "nope", "m", None)
    pooled = TensorInfo("sentence_embedding", ("batch", 384), "tensor(float)")
    with pytest.raises(ModelLoadError, match="masked-language-model head"):
        pick_logits_output(graph(pooled), None, "m", None)


def test_sparse_entries_are_validated() -> None:
    entry = {"kind": "sparse", "source": "/x", "files": {"model": "m", "tokenizer": "t"}}
    spec = parse_entry("s", entry)
    assert (spec.kind, spec.context_length, spec.vector_width) == ("sparse", 512, None)
    with pytest.raises(RegistryError, match="pooling"):
        parse_entry("s", {**entry, "pooling": "mean"})
    with pytest.raises(RegistryError, match="activation"):
        parse_entry("s", {**entry, "activation": "gelu"})
    with pytest.raises(RegistryError, match="max_tokens"):
        parse_entry("s", {**entry, "max_tokens": 1})
    with pytest.raises(RegistryError, match=r"files\.tokenizer"):
        parse_entry("s", {**entry, "files": {"model": "m"}})
