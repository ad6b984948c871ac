"""A tiny random BERT cross-encoder, its registry entry and its transformers reference.

A 2-layer, 64-wide BertForSequenceClassification with a single-logit head on bert-base-uncased
WordPiece (the tokenizer.json of all-MiniLM, which the caller passes in), saved under torch/ and
exported to ONNX (input_ids, attention_mask, token_type_ids -> logits). Cached under
.cache/test-models/cross-encoder-bert-tiny-<version>/, where the version hashes CONFIG, the
tokenizer and a revision: bump the revision in `cross_encoder_version` when the builder changes.

QUERY and DOCUMENTS are the pairs the parity tests score (tests/parity/test_cross_encoder.py
directly, tests/api/rerank/test_scorers.py through the server); DOCUMENTS[LONG] is longer than
MAX_TOKENS with the query, so truncation is exercised without long texts.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from tools.exports import TINY_BERT, TOKEN_INPUTS, cached_export, export_by_keyword

NAME = "cross-encoder-bert-tiny"
MAX_TOKENS = 64
CONFIG = {**TINY_BERT, "num_labels": 1}
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


# The shape of cross-encoder/ms-marco-MiniLM-L6-v2 (its config.json): a random-weight stand-in
# for the registry's real reranker entry, which cannot be downloaded here.
MINILM_L6_CONFIG = {
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "num_labels": 1,
    "initializer_range": 0.2,  # wide, so that pairs get clearly different logits
}


def cross_encoder_version(tokenizer: Path, config: dict[str, Any] = CONFIG) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(tokenizer.read_bytes())
    digest.update(b"r1")  # bump when build_cross_encoder changes
    return digest.hexdigest()[:12]


def build_cross_encoder(
    folder: Path, tokenizer_json: Path, config: dict[str, Any] = CONFIG
) -> None:
    """Save the seeded model and its tokenizer under folder/torch, export folder/model.onnx."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    raw = json.loads(tokenizer_json.read_text())
    raw["padding"] = raw["truncation"] = None  # the published file bakes in 128 of each
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    tokenizer = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(vocab_size=tokenizer.vocab_size, **config)
    ).eval()
    model.save_pretrained(folder / "torch")
    tokenizer.save_pretrained(folder / "torch")
    # A padded pair batch: zeros in the mask and ones in the token types, or the exporter
    # could fold either path away.
    sample = tokenizer([QUERY, QUERY], ["short", DOCUMENTS[0]], padding=True, return_tensors="pt")
    example = tuple(sample[name] for name in TOKEN_INPUTS)
    export_by_keyword(model, example, folder / "model.onnx", "logits", {0: "batch"})


def cross_encoder_dir(
    bert_tokenizer: Path, config: dict[str, Any] = CONFIG, name: str = NAME
) -> Path:
    """The cross-encoder's folder (built the first time it is asked for); `bert_tokenizer` is
    bert-base-uncased's tokenizer.json."""
    build = functools.partial(build_cross_encoder, tokenizer_json=bert_tokenizer, config=config)
    return cached_export(name, cross_encoder_version(bert_tokenizer, config), build)


def cross_encoder_entry(
    folder: Path, max_tokens: int = MAX_TOKENS, **overrides: object
) -> dict[str, Any]:
    return {
        "kind": "cross-encoder",
        "source": str(folder),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "max_tokens": max_tokens,
        **overrides,
    }


def transformers_reference(
    folder: Path, query: str, documents: list[str], max_tokens: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """transformers' tokenization of (query, each document) and the model's logits (float32),
    from AutoTokenizer and AutoModelForSequenceClassification on the weights under torch/."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder / "torch")
    model = AutoModelForSequenceClassification.from_pretrained(folder / "torch").eval()
    features = tokenizer(
        [query] * len(documents),
        documents,
        padding=True,
        truncation=True,
        max_length=max_tokens,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = model(**features).logits[:, 0].numpy()
    return {k: v.numpy() for k, v in features.items()}, logits


def transformers_logits(
    folder: Path, query: str, documents: list[str], max_tokens: int
) -> np.ndarray:
    """The logits alone, in float64."""
    return transformers_reference(folder, query, documents, max_tokens)[1].astype(np.float64)
