"""VisionEncoder against transformers: same random CLIP vision tower, same images.

The reference is transformers' CLIPImageProcessor (its PIL backend) and the PyTorch model, CLS of
last_hidden_state, L2-normalized. The gateway side is the real path: encoded bytes ->
gateway.media.decode_image -> VisionEncoder.prepare -> ONNX Runtime -> finish.

The reference is handed the RGB image that each decoding rule should produce, computed
independently in tests/support/vision_cases.py (numpy palette lookups, alpha compositing onto
white, 16-bit scaling, np.rot90 for EXIF orientation), so the rules are pinned whatever
transformers version is installed (transformers 5.3 drops alpha, 5.23 composites onto white).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import AutoImageProcessor

from gateway.encoders import build_encoder
from gateway.encoders import pixels as pixels_module
from gateway.encoders.vision import (
    Preprocessing,
    VisionEncoder,
    finish,
    parse_preprocessor_config,
    resize_and_crop,
    to_pixels,
)
from gateway.errors import ModelLoadError
from gateway.media import decode_image
from gateway.registry import ImageModelSpec, parse_entry
from gateway.runtime import Runtime
from tests.support.vision_cases import CASES, Case
from tools.vision import CLIP_MEAN, CLIP_STD, ClipReference, clip_vision_tiny, photo_like

DIM = 64
MIN_COSINE = 0.9999
PIXEL_ATOL = 1e-5


def image_spec(folder: Path, **fields: object) -> ImageModelSpec:
    entry = {
        "kind": "image",
        "source": str(folder),
        "files": {"model": "model.onnx", "preprocessor": "preprocessor_config.json"},
        "dim": DIM,
        "pooling": "cls",
        **fields,
    }
    spec = parse_entry("tiny-vision", entry)
    assert isinstance(spec, ImageModelSpec)
    return spec


def load(folder: Path, **fields: object) -> VisionEncoder:
    spec = image_spec(folder, **fields)
    paths = {role: folder / ref.path for role, ref in spec.files.items()}
    encoder = build_encoder(spec, paths, Runtime(device="cpu", threads=1))
    assert isinstance(encoder, VisionEncoder)
    return encoder


@pytest.fixture(scope="module")
def folder() -> Path:
    return clip_vision_tiny()


@pytest.fixture(scope="module")
def encoder(folder: Path) -> VisionEncoder:
    return load(folder)


@pytest.fixture(scope="module")
def reference(folder: Path):  # type: ignore[no-untyped-def]
    """images -> (transformers' pixel_values, unit CLS vectors)."""
    return ClipReference(folder).pixels_and_vectors


def ours(encoder: VisionEncoder, datas: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    items = [encoder.prepare_image(decode_image(data)) for data in datas]
    vectors = finish(encoder.pool(encoder.run(items)), dimensions=DIM, normalize=True)
    return np.stack([item.pixels for item in items]), vectors


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_embedding_matches_transformers(case: Case, encoder: VisionEncoder, reference) -> None:  # type: ignore[no-untyped-def]
    ref_pixels, ref_vector = reference([case.reference])
    pixels, vector = ours(encoder, [case.data])
    pixel_diff = float(np.abs(pixels - ref_pixels).max())
    cosine = float((vector * ref_vector).sum())
    print(f"{case.name}: cosine {cosine:.8f}, pixel max diff {pixel_diff:.2e}")
    assert pixel_diff <= PIXEL_ATOL
    assert cosine >= MIN_COSINE
    assert float(np.abs(vector - ref_vector).max()) <= 1e-4


def test_reference_tells_images_apart(reference) -> None:  # type: ignore[no-untyped-def]
    """The parity bound means something only if different pictures give different vectors."""
    _, vectors = reference([c.reference for c in CASES[:6]])
    similarity = vectors @ vectors.T
    off_diagonal = similarity[~np.eye(len(vectors), dtype=bool)]
    assert off_diagonal.max() < 0.999


def test_one_image_alone_or_in_a_batch_of_eight(encoder: VisionEncoder) -> None:
    items = [encoder.prepare_image(decode_image(c.data)) for c in CASES[:8]]
    together = encoder.pool(encoder.run(items))
    alone = encoder.pool([encoder.run([item])[0] for item in items])
    reversed_batch = encoder.pool(encoder.run(items[::-1])[::-1])
    diff = max(np.abs(together - alone).max(), np.abs(reversed_batch - alone).max())
    print(f"batch invariance: max abs diff {diff:.2e}")
    assert diff <= 1e-5
    assert all(item.length == (224 // 16) ** 2 + 1 for item in items)


def test_uint8_nhwc_graph_gives_the_same_vectors(folder: Path, encoder: VisionEncoder,
                                                 reference) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    raw = load(folder, files={"model": "model_uint8.onnx",
                              "preprocessor": "preprocessor_config.json"},
               pixel_format="nhwc_uint8")  # fmt: skip
    assert raw.pixel_input.name == "image" and raw.layout == "nhwc_uint8"
    datas = [c.data for c in CASES[:5]]
    pixels, vectors = ours(raw, datas)
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 224, 224, 3)
    _, expected = reference([c.reference for c in CASES[:5]])
    assert float((vectors * expected).sum(axis=1).min()) >= MIN_COSINE


def test_matryoshka_slice_is_renormalized(encoder: VisionEncoder) -> None:
    item = encoder.prepare_image(decode_image(CASES[0].data))
    raw = encoder.pool(encoder.run([item]))
    sliced = finish(raw, dimensions=16, normalize=True)
    assert sliced.shape == (1, 16)
    assert abs(float(np.linalg.norm(sliced)) - 1) < 1e-6
    np.testing.assert_allclose(sliced[0], raw[0, :16] / np.linalg.norm(raw[0, :16]), rtol=1e-6)
    unnormalized = finish(raw, dimensions=DIM, normalize=False)
    np.testing.assert_array_equal(unnormalized, raw)


# -- resizing edge cases ---------------------------------------------------------------------------


def test_extreme_panorama_resamples_only_the_crop(encoder: VisionEncoder) -> None:
    """A 2 x 30000 strip would be a 224 x 3.36M image if resized whole (2.2 GB as RGB)."""
    strip = Image.fromarray(np.asarray(photo_like(20, 3000, 2)).repeat(10, axis=1))
    assert strip.size == (30000, 2)
    item = encoder.prepare_image(strip)
    assert item.pixels.shape == (3, 224, 224)
    assert np.isfinite(item.pixels).all()


def test_crop_box_resampling_stays_close_to_transformers(
    encoder: VisionEncoder, reference, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The box path (forced here on ordinary images) is approximate, but only slightly."""
    monkeypatch.setattr(pixels_module, "MAX_RESIZED_PIXELS", 1)
    cases = [c for c in CASES if c.name in {"png-wide", "jpeg-tall", "png-panorama"}]
    _, expected = reference([c.reference for c in cases])
    _, vectors = ours(encoder, [c.data for c in cases])
    cosines = (vectors * expected).sum(axis=1)
    print(f"crop-box path: min cosine {cosines.min():.6f}")
    assert cosines.min() >= 0.999


# -- preprocessor_config.json ----------------------------------------------------------------------

BASE = Preprocessing("shortest_edge", 224, 224, 3, 1 / 255, tuple(CLIP_MEAN), tuple(CLIP_STD))  # type: ignore[arg-type]


def test_squash_form_matches_transformers_vit_processor(tmp_path: Path) -> None:
    config = {"image_processor_type": "ViTImageProcessor", "do_resize": True,
              "size": {"height": 224, "width": 224}, "resample": 2, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3,
              "image_std": [0.5] * 3}  # fmt: skip
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    pre = parse_preprocessor_config(config, BASE)
    for case in CASES[:4]:
        expected = processor(images=Image.fromarray(case.reference), return_tensors="np")
        square = resize_and_crop(Image.fromarray(case.reference), pre)
        got = to_pixels(square, pre, "nchw_float")
        assert np.abs(got - expected["pixel_values"][0]).max() <= PIXEL_ATOL


def test_preprocessor_file_overrides_the_registry(folder: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="gateway.encoders.vision"):
        encoder = load(folder, resample="bilinear", mean=[0.5, 0.5, 0.5])
    assert encoder.preprocessing.resample == int(Image.Resampling.BICUBIC)
    assert encoder.preprocessing.mean == tuple(CLIP_MEAN)
    assert "resample: 2 -> 3" in caplog.text and "mean" in caplog.text


def test_load_errors_name_the_problem(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="pixel_format: nhwc_uint8"):
        load(folder, files={"model": "model_uint8.onnx"})
    with pytest.raises(ModelLoadError, match="pixel_format: nchw_float"):
        load(folder, files={"model": "model.onnx"}, pixel_format="nhwc_uint8")
    with pytest.raises(ModelLoadError, match="64 wide but dim is 32"):
        load(folder, dim=32)
    with pytest.raises(ModelLoadError, match="pooling none"):
        load(folder, pooling="none")
    with pytest.raises(ModelLoadError, match="not one of"):
        load(folder, output="missing")
    bad = tmp_path / "preprocessor_config.json"
    bad.write_text(json.dumps({"crop_size": {"height": 224, "width": 100}}))
    (tmp_path / "model.onnx").symlink_to(folder / "model.onnx")
    with pytest.raises(ModelLoadError, match="not square"):
        load(tmp_path)
    bad.write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"preprocessor_config\.json"):
        load(tmp_path)
