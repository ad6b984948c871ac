"""Registry entries and references for the ColBERT parity, multi-vector and rerank API tests.

The tiny PyLate ColBERTs (tools/colbert_models.py) are served in any of three ONNX
layouts; the bundled all-MiniLM-L6-v2 serves as a plain embedder and, with its hidden states as
token vectors, as a late-interaction model on real weights. The tiny cross-encoder's material is
in tools/cross_encoder.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tools.colbert_models import ColbertModel

# Per token, on unit vectors: ONNX Runtime and torch differ by ~1e-7 in fp32.
MIN_COSINE = 0.9999
MAX_ABS_DIFF = 1e-5
# layout -> (model file, projection file or None: projection and L2 inside the graph)
LAYOUTS: dict[str, tuple[str, str | None]] = {
    "graph": ("graph/model.onnx", None),
    "hidden+safetensors": ("hidden/model.onnx", "pylate/1_Dense/model.safetensors"),
    "hidden+npy": ("hidden/model.onnx", "projection.npy"),
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


def reference_maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """ColBERT's score by its definition, in float64: sum over query rows of the best dot."""
    similarity = query.astype(np.float64) @ document.astype(np.float64).T
    return float(similarity.max(axis=1).sum())


def min_cosine(ours: np.ndarray, reference: np.ndarray) -> float:
    """The smallest row-by-row cosine between two [tokens, dim] matrices of equal shape."""
    dots = (ours * reference).sum(axis=1)
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    return float((dots / norms).min())


def assert_matches_pylate(
    ours: list[np.ndarray], expected: list[np.ndarray], label: str
) -> tuple[float, float]:
    """Exact token counts, then per-token cosine and max abs difference against PyLate's token
    matrices (at least MIN_COSINE, at most MAX_ABS_DIFF); returns both."""
    assert [m.shape for m in ours] == [e.shape for e in expected], f"{label}: token counts"
    worst = min(min_cosine(o, e) for o, e in zip(ours, expected, strict=True))
    diff = max(float(np.abs(o - e).max()) for o, e in zip(ours, expected, strict=True))
    assert worst >= MIN_COSINE, f"{label}: min per-token cosine {worst}"
    assert diff <= MAX_ABS_DIFF, f"{label}: max abs diff {diff}"
    return worst, diff


def batch_stats(client: httpx.Client, model: str) -> tuple[int, int]:
    """(batches, items) the model's Batcher has run, from /admin/models."""
    response = client.get("/admin/models")
    assert response.status_code == 200, response.text
    (row,) = [row for row in response.json()["models"] if row["name"] == model]
    assert row["state"] == "loaded", row
    return row["batches"], row["items"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))
