"""CrossEncoder against transformers' AutoModelForSequenceClassification on the same weights.

A tiny random BERT with a single-logit head (tools/cross_encoder.py) is saved, exported
to ONNX once (cached under .cache/test-models/), and served by the gateway's CrossEncoder; token
ids, token types and logits must match the PyTorch model fed by the transformers tokenizer, long
pairs included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from gateway.encoders import build_encoder
from gateway.encoders.cross import CrossEncoder
from gateway.errors import InputTooLong, ModelLoadError
from gateway.registry import CrossEncoderSpec, RegistryError, parse_entry
from gateway.rerank import rerank
from gateway.runtime import Runtime
from gateway.scoring import rank, relevance_from_logits
from tools.cross_encoder import (
    DOCUMENTS,
    LONG,
    MAX_TOKENS,
    QUERY,
    cross_encoder_dir,
    cross_encoder_entry,
    transformers_reference,
)


@pytest.fixture(scope="module")
def model_dir(default_model_dir: Path) -> Path:
    return cross_encoder_dir(default_model_dir / "tokenizer.json")  # bert-base-uncased WordPiece


def load(model_dir: Path, **overrides: object) -> CrossEncoder:
    spec = parse_entry("tiny-reranker", cross_encoder_entry(model_dir, **overrides))
    assert isinstance(spec, CrossEncoderSpec)
    paths = {role: model_dir / ref.path for role, ref in spec.files.items()}
    encoder = build_encoder(spec, paths, Runtime(device="cpu", threads=1))
    assert isinstance(encoder, CrossEncoder)
    return encoder


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """transformers' tokenization and logits for (QUERY, each document)."""
    return transformers_reference(model_dir, QUERY, DOCUMENTS, MAX_TOKENS)


def test_pairs_tokenize_as_transformers(model_dir: Path, reference) -> None:
    features, _ = reference
    encoder = load(model_dir)
    items = encoder.tokenize_pairs(QUERY, DOCUMENTS)
    for row, item in enumerate(items):
        length = int(features["attention_mask"][row].sum())
        assert item.ids.tolist() == features["input_ids"][row, :length].tolist()
        assert item.type_ids.tolist() == features["token_type_ids"][row, :length].tolist()
        assert item.truncated == (row == LONG)
    assert items[LONG].length == MAX_TOKENS
    # Longest-first: the query survives whole, the document was cut.
    query_only = encoder.tokenize_pairs(QUERY, ["x"])[0]
    query_tokens = int((query_only.type_ids == 0).sum())
    assert int((items[LONG].type_ids == 0).sum()) == query_tokens


def test_logits_match_transformers(model_dir: Path, reference) -> None:
    _, expected = reference
    encoder = load(model_dir)
    items = encoder.tokenize_pairs(QUERY, DOCUMENTS)
    batched = np.concatenate(encoder.run(items))
    alone = np.concatenate([encoder.run([item])[0] for item in items])
    assert batched.dtype == np.float32 and batched.shape == (len(DOCUMENTS),)
    diff = float(np.abs(batched - expected).max())
    assert diff <= 1e-4, f"max abs logit diff {diff}"
    np.testing.assert_allclose(alone, batched, atol=1e-5)
    assert np.ptp(expected) > 0.1  # the pairs are told apart, so the comparison means something
    relevance = relevance_from_logits(batched)
    assert ((relevance > 0) & (relevance < 1)).all()
    assert rank(relevance) == rank(expected)
    print(f"cross-encoder: max abs logit diff {diff:.2e}")


def test_rerank_entry_point_cross_encoder(model_dir: Path, reference) -> None:
    _, expected = reference
    encoder = load(model_dir)

    async def submit(items):
        return await asyncio.to_thread(encoder.run, items)

    result = asyncio.run(rerank(encoder, submit, QUERY, DOCUMENTS))
    np.testing.assert_allclose(result.raw, expected, atol=1e-4)
    np.testing.assert_allclose(result.relevance, 1 / (1 + np.exp(-expected)), atol=1e-4)
    assert result.top() == rank(expected)
    assert result.truncated == [LONG]
    assert result.tokens == sum(item.length for item in encoder.tokenize_pairs(QUERY, DOCUMENTS))
    with pytest.raises(InputTooLong, match=r"documents\[3\]"):
        asyncio.run(rerank(encoder, submit, QUERY, DOCUMENTS, truncate=False))
    fits = [d for i, d in enumerate(DOCUMENTS) if i != LONG]
    assert asyncio.run(rerank(encoder, submit, QUERY, fits, truncate=False)).truncated == []


def test_cross_encoder_configuration_errors(model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="nope"):
        load(model_dir, output="nope")
    with pytest.raises(RegistryError, match="max_tokens"):
        parse_entry("x", cross_encoder_entry(model_dir, max_tokens=3))
    with pytest.raises(RegistryError, match=r"files\.tokenizer"):
        parse_entry("x", cross_encoder_entry(model_dir, files={"model": "model.onnx"}))
