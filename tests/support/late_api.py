"""Registry entries and references for the multi-vector and rerank API tests.

The tiny PyLate ColBERTs (tests/support/colbert_models.py) are served in both ONNX layouts;
the bundled all-MiniLM-L6-v2 serves as a plain embedder and, with its hidden states as token
vectors, as a late-interaction model on real weights; the tiny cross-encoder of
tests/test_cross_encoder.py is reused from its cache folder.
"""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.support.colbert_models import ColbertModel

# layout -> (model file, projection file or None: projection and L2 inside the graph)
LAYOUTS: dict[str, tuple[str, str | None]] = {
    "graph": ("graph/model.onnx", None),
    "hidden": ("hidden/model.onnx", "pylate/1_Dense/model.safetensors"),
}


def colbert_entry(model: ColbertModel, layout: str, **overrides: object) -> dict[str, Any]:
    """A `kind: late` entry serving one of the PyLate-built models with its own settings."""
    onnx_file, projection = LAYOUTS[layout]
    files = {"model": onnx_file, "tokenizer": "pylate/tokenizer.json"}
    if projection is not None:
        files["projection"] = projection
    s = model.settings
    entry: dict[str, Any] = {
        "kind": "late",
        "source": str(model.folder),
        "files": files,
        "dim": s.dim,
        "query_prefix": s.query_prefix,
        "document_prefix": s.document_prefix,
        "query_length": s.query_length,
        "document_length": s.document_length,
        "attend_to_expansion_tokens": s.attend_to_expansion_tokens,
        "skiplist": list(s.skiplist),
        "family": "bert" if model.facts["has_token_type_ids"] else "modernbert",
    }
    return {**entry, **overrides}


def minilm_late_entry(model_dir: Path, **overrides: object) -> dict[str, Any]:
    """all-MiniLM-L6-v2's hidden states as token vectors (no projection: dim 384), with
    answerai-colbert-small's markers and [MASK] expansion unless overridden."""
    return {
        "kind": "late",
        "source": str(model_dir),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "dim": 384,
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 32,
        "document_length": 256,
        **overrides,
    }


def cross_encoder_dir(bert_tokenizer: Path) -> Path:
    """The tiny random BERT cross-encoder of tests/test_cross_encoder.py (built there once and
    cached under .cache/test-models/; built here the same way if this module runs first)."""
    from tests import test_cross_encoder as cross

    folder = cross.CACHE / f"cross-encoder-bert-tiny-{cross._version(bert_tokenizer)}"
    cross.CACHE.mkdir(parents=True, exist_ok=True)
    with (cross.CACHE / ".cross-encoder-bert-tiny.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "model.onnx").is_file():
            staging = folder.with_name(folder.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            cross._build(staging, bert_tokenizer)
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
    return folder


def cross_encoder_entry(folder: Path, max_tokens: int) -> dict[str, Any]:
    return {
        "kind": "cross-encoder",
        "source": str(folder),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "max_tokens": max_tokens,
    }


def transformers_logits(folder: Path, query: str, documents: list[str], max_tokens: int):
    """The cross-encoder's logits from transformers (PyTorch) on the saved weights."""
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
        return model(**features).logits[:, 0].numpy().astype(np.float64)


def reference_maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """ColBERT's score by its definition, in float64: sum over query rows of the best dot."""
    similarity = query.astype(np.float64) @ document.astype(np.float64).T
    return float(similarity.max(axis=1).sum())


def min_cosine(ours: np.ndarray, reference: np.ndarray) -> float:
    """The smallest row-by-row cosine between two [tokens, dim] matrices of equal shape."""
    dots = (ours * reference).sum(axis=1)
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    return float((dots / norms).min())


def batch_stats(client: httpx.Client, model: str) -> tuple[int, int]:
    """(batches, items) the model's Batcher has run, from /admin/models."""
    response = client.get("/admin/models")
    assert response.status_code == 200, response.text
    (row,) = [row for row in response.json()["models"] if row["name"] == model]
    assert row["state"] == "loaded", row
    return row["batches"], row["items"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))
