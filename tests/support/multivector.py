"""Reading multi-vector (ColBERT) answers of /v1/embeddings, for tests/api/test_multivector_api.py
and tests/api/test_shipped_colbert_entries.py: PyLate's matrices to compare with, a 200
answer, and the token matrices it carries."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np

from tools.colbert_models import DOCUMENTS, QUERIES, ColbertModel


def reference(model: ColbertModel, task: str) -> list[np.ndarray]:
    if task == "query":
        return [model.query_vectors(i) for i in range(len(QUERIES))]
    return [model.document_vectors(i) for i in range(len(DOCUMENTS))]


def post_embeddings(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def matrices_of(payload: dict[str, Any]) -> list[np.ndarray]:
    """Each data item as a [tokens, dim] float32 matrix, float lists or base64 + shape."""
    data = payload["data"]
    assert [item["index"] for item in data] == list(range(len(data)))
    matrices = []
    for item in data:
        assert item["object"] == "embedding"
        rows, dim = item["shape"]
        if isinstance(item["embedding"], str):
            raw = base64.b64decode(item["embedding"], validate=True)
            assert len(raw) == rows * dim * 4, "row-major float32: 4 bytes per value"
            matrix = np.frombuffer(raw, dtype="<f4").reshape(rows, dim)
        else:
            assert len(item["embedding"]) == rows
            assert all(len(row) == dim for row in item["embedding"])
            matrix = np.asarray(item["embedding"], dtype=np.float32)
        matrices.append(matrix)
    return matrices
