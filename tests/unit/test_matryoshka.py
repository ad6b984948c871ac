"""Matryoshka arithmetic on pooled vectors: layer_norm over the full width, slice, normalize.

nomic-embed-text's published recipe is F.layer_norm over all 768 components (no affine), then
keep the first `dimensions`, then F.normalize. The order matters: normalizing before slicing
gives vectors that are not unit length, and slicing before the layer norm changes every value.
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.encoders.text import LAYER_NORM_EPS, postprocess
from gateway.encoders.vision import finish

RNG = np.random.default_rng(7)
POOLED = (RNG.normal(size=(4, 768)) * 3 + 1).astype(np.float32)


def reference(pooled: np.ndarray, *, layer_norm: bool, dimensions: int) -> np.ndarray:
    x = pooled.astype(np.float64)
    if layer_norm:
        mean = x.mean(axis=1, keepdims=True)
        x = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + LAYER_NORM_EPS)
    x = x[:, :dimensions]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("dimensions", [768, 512, 256, 128, 64, 1])
@pytest.mark.parametrize("layer_norm", [True, False])
def test_slice_then_normalize_matches_the_recipe(layer_norm: bool, dimensions: int) -> None:
    got = postprocess(POOLED, layer_norm=layer_norm, dimensions=dimensions, normalize=True)
    assert got.shape == (4, dimensions) and got.dtype == np.float32
    assert got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(
        got, reference(POOLED, layer_norm=layer_norm, dimensions=dimensions), atol=2e-6
    )
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_layer_norm_uses_the_full_width_not_the_slice() -> None:
    full_first = postprocess(POOLED, layer_norm=True, dimensions=64, normalize=True)
    slice_first = postprocess(POOLED[:, :64], layer_norm=True, dimensions=64, normalize=True)
    assert np.abs(full_first - slice_first).max() > 1e-3


def test_a_narrower_width_is_a_renormalized_prefix_of_the_wider_one() -> None:
    wide = postprocess(POOLED, layer_norm=True, dimensions=256, normalize=True)
    narrow = postprocess(POOLED, layer_norm=True, dimensions=128, normalize=True)
    prefix = wide[:, :128] / np.linalg.norm(wide[:, :128], axis=1, keepdims=True)
    np.testing.assert_allclose(narrow, prefix, atol=1e-6)


def test_without_normalize_the_slice_keeps_its_values() -> None:
    got = postprocess(POOLED, layer_norm=False, dimensions=100, normalize=False)
    np.testing.assert_array_equal(got, POOLED[:, :100])


def test_zero_vectors_stay_finite() -> None:
    got = postprocess(np.zeros((2, 16), np.float32), layer_norm=False, dimensions=8, normalize=True)
    assert np.isfinite(got).all() and not got.any()


def test_the_input_is_not_modified() -> None:
    before = POOLED.copy()
    postprocess(POOLED, layer_norm=True, dimensions=64, normalize=True)
    np.testing.assert_array_equal(POOLED, before)


def test_images_slice_and_normalize_without_layer_norm() -> None:
    got = finish(POOLED, dimensions=256, normalize=True)
    np.testing.assert_allclose(got, reference(POOLED, layer_norm=False, dimensions=256), atol=2e-6)
