"""Raw-HTTP helpers: embed through each API family, and check each family's error shape."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np


def ollama_embed(
    client: httpx.Client, model: str, inputs: str | Sequence[str], **fields: Any
) -> np.ndarray:
    """POST /api/embed; the vectors as a float32 [n, dim] array."""
    body = {"model": model, "input": inputs if isinstance(inputs, str) else list(inputs)}
    response = client.post("/api/embed", json={**body, **fields})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["embeddings"], dtype=np.float32)


def openai_embed(
    client: httpx.Client, model: str, inputs: str | Sequence[str], **fields: Any
) -> np.ndarray:
    """POST /v1/embeddings with float encoding unless `encoding_format` says otherwise."""
    body = {"model": model, "input": inputs if isinstance(inputs, str) else list(inputs)}
    response = client.post("/v1/embeddings", json={"encoding_format": "float", **body, **fields})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(len(data)))
    return np.asarray([decode_embedding(item["embedding"]) for item in data], dtype=np.float32)


def decode_embedding(value: list[float] | str) -> np.ndarray:
    """A float list, or OpenAI's base64 of little-endian float32 bytes."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value, validate=True), dtype="<f4")
    return np.asarray(value, dtype=np.float32)


def assert_ollama_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """Ollama's (and the native routes') error: {"error": "<message>"} and nothing else."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert body["error"], "the message must not be empty"
    for fragment in fragments:
        assert fragment.lower() in body["error"].lower(), (fragment, body["error"])
    return body["error"]


def assert_tei_error(
    response: httpx.Response, status: int, error_type: str, *fragments: str
) -> str:
    """TEI's error: {"error": "<message>", "error_type": "<kind>"} and nothing else."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error", "error_type"], body
    assert body["error_type"] == error_type and body["error"], body
    for fragment in fragments:
        assert fragment.lower() in body["error"].lower(), (fragment, body["error"])
    return str(body["error"])


def assert_openai_error(
    response: httpx.Response,
    status: int,
    *fragments: str,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error: {"error": {"message", "type", "param", "code"}}, all four keys present."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["code"] is None or isinstance(error["code"], str), error
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    for fragment in fragments:
        assert fragment.lower() in error["message"].lower(), (fragment, error["message"])
    return error
