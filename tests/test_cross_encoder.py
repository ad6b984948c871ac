"""CrossEncoder against transformers' AutoModelForSequenceClassification on the same weights.

A tiny random BERT with a single-logit head is saved, exported to ONNX once (cached under
.cache/test-models/), and served by the gateway's CrossEncoder; token ids, token types and
logits must match the PyTorch model fed by the transformers tokenizer, long pairs included.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import shutil
import warnings
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
from tests.support.server import REPO

CACHE = REPO / ".cache" / "test-models"
MAX_TOKENS = 64  # small, so that truncation is exercised without long texts
CONFIG = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
    "num_labels": 1,
    # Wide weights: with the usual 0.02 every pair would get nearly the same logit.
    "initializer_range": 0.2,
}
QUERY = "what is late interaction retrieval?"
DOCUMENTS = [
    "Late interaction scores every query token against every document token.",
    "short",
    "Hello, world!",
    # Longer than MAX_TOKENS with the query: longest-first truncation trims the document.
    "ColBERT " * 80,
    "A cross-encoder reads the query and the document together in one pass.",
]
LONG = 3


def _version(tokenizer: Path) -> str:
    digest = hashlib.sha256(json.dumps(CONFIG, sort_keys=True).encode())
    digest.update(tokenizer.read_bytes())
    digest.update(b"r1")  # bump when _build changes
    return digest.hexdigest()[:12]


def _build(folder: Path, tokenizer_json: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    raw = json.loads(tokenizer_json.read_text())
    raw["padding"] = raw["truncation"] = None  # the published file bakes in 128 of each
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    tokenizer = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(vocab_size=tokenizer.vocab_size, **CONFIG)
    ).eval()
    model.save_pretrained(folder / "torch")
    tokenizer.save_pretrained(folder / "torch")

    class ByKeyword(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits

    # A padded pair batch: zeros in the mask and ones in the token types, or the exporter
    # could fold either path away.
    sample = tokenizer([QUERY, QUERY], ["short", DOCUMENTS[0]], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    # The legacy exporter's deprecation and tracer warnings say nothing about this model.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ByKeyword(model),
            tuple(sample[name] for name in names),
            str(folder / "model.onnx"),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*names, "logits"]}
            | {"logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


@pytest.fixture(scope="module")
def model_dir(default_model_dir: Path) -> Path:
    tokenizer_json = default_model_dir / "tokenizer.json"  # bert-base-uncased WordPiece
    folder = CACHE / f"cross-encoder-bert-tiny-{_version(tokenizer_json)}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".cross-encoder-bert-tiny.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "model.onnx").is_file():
            staging = folder.with_name(folder.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            _build(staging, tokenizer_json)
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
    return folder


def entry(model_dir: Path, **overrides: object) -> dict:
    return {
        "kind": "cross-encoder",
        "source": str(model_dir),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "max_tokens": MAX_TOKENS,
        **overrides,
    }


def load(model_dir: Path, **overrides: object) -> CrossEncoder:
    spec = parse_entry("tiny-reranker", entry(model_dir, **overrides))
    assert isinstance(spec, CrossEncoderSpec)
    paths = {role: model_dir / ref.path for role, ref in spec.files.items()}
    encoder = build_encoder(spec, paths, Runtime(device="cpu", threads=1))
    assert isinstance(encoder, CrossEncoder)
    return encoder


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """transformers' tokenization and logits for (QUERY, each document)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir / "torch")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir / "torch").eval()
    features = tokenizer(
        [QUERY] * len(DOCUMENTS),
        DOCUMENTS,
        padding=True,
        truncation=True,
        max_length=MAX_TOKENS,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = model(**features).logits[:, 0].numpy()
    return {k: v.numpy() for k, v in features.items()}, logits


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
        parse_entry("x", entry(model_dir, max_tokens=3))
    with pytest.raises(RegistryError, match=r"files\.tokenizer"):
        parse_entry("x", entry(model_dir, files={"model": "model.onnx"}))
