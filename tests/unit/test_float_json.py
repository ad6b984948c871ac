"""Vectors in JSON answers (gateway.api.responses.float_json): each float32 in its shortest
round-trip form, as Ollama's Go server writes them, so a client reading float32 gets the exact
value back from fewer bytes than float64 reprs take."""

from __future__ import annotations

import json
import re

import msgspec
import numpy as np
import pytest

from gateway.api.responses import float_json

NUMBER = re.compile(rb"-?\d[\d.eE+-]*")


def _vectors(rows: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((rows, width)).astype(np.float32)
    if rows and width >= 6:  # zeros, tiny, huge, subnormal
        vectors[0, :6] = [0.0, -0.0, 1e-8, 3.4e38, 1.0, -1.5e-45]
    return vectors


@pytest.mark.parametrize("shape", [(1, 384), (32, 768), (0, 384)], ids=["one", "batch", "none"])
def test_float32_read_back_is_exact_and_shorter(shape: tuple[int, int]) -> None:
    vectors = _vectors(*shape)
    encoded = msgspec.json.encode({"embeddings": float_json(vectors)})
    back = np.asarray(json.loads(encoded)["embeddings"], dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(back, vectors)
    as_float64 = msgspec.json.encode({"embeddings": vectors.tolist()})
    if vectors.size:
        assert len(encoded) < 0.75 * len(as_float64), (len(encoded), len(as_float64))


def _significant(number: str) -> str:
    """The significant digits of a decimal number, whatever its notation."""
    mantissa = re.sub(r"[eE].*", "", number)
    return mantissa.replace("-", "").replace(".", "").strip("0")


def test_each_number_is_float32s_shortest_form() -> None:
    vectors = _vectors(4, 384)
    numbers = NUMBER.findall(msgspec.json.encode(float_json(vectors)))
    assert len(numbers) == vectors.size
    for text, value in zip(numbers, vectors.ravel(), strict=True):
        assert np.float32(float(text)) == value
        # numpy's shortest unique digits for this float32, e.g. "6.3856714e-03"
        shortest = np.format_float_scientific(value, unique=True)
        assert _significant(text.decode()) == _significant(shortest), (text, shortest)


def test_a_vector_and_a_list_of_matrices() -> None:
    vector = _vectors(1, 8)[0]
    assert np.array_equal(np.float32(json.loads(msgspec.json.encode(float_json(vector)))), vector)
    # Views that are not C-contiguous (orjson refuses those) and a float64 array.
    matrices = [_vectors(3, 4), _vectors(5, 8)[:, :4], _vectors(4, 6).T, _vectors(2, 4) * 1.0]
    matrices[-1] = matrices[-1].astype(np.float64) / 3
    decoded = json.loads(msgspec.json.encode([float_json(m) for m in matrices]))
    for got, want in zip(decoded, matrices, strict=True):
        np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), want.astype(np.float32))
