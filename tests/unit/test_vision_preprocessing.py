"""preprocessor_config.json forms -> the gateway's Preprocessing: what is read, what is refused.

The pixels these settings produce are compared with transformers' processors in
tests/parity/test_vision_parity.py.
"""

from __future__ import annotations

import pytest

from gateway.encoders.vision import (
    Preprocessing,
    parse_preprocessor_config,
)
from tools.vision import CLIP_MEAN, CLIP_STD

BASE = Preprocessing("shortest_edge", 224, 224, 3, 1 / 255, tuple(CLIP_MEAN), tuple(CLIP_STD))  # type: ignore[arg-type]


def test_preprocessor_forms() -> None:
    legacy_clip = {"feature_extractor_type": "CLIPFeatureExtractor", "size": 256,
                   "crop_size": 224, "resample": 2}  # fmt: skip
    pre = parse_preprocessor_config(legacy_clip, BASE)
    assert (pre.resize, pre.resize_size, pre.crop_size, pre.resample) == (
        "shortest_edge", 256, 224, 2)  # fmt: skip
    vit = {"image_processor_type": "ViTImageProcessor", "size": {"height": 384, "width": 384},
           "do_center_crop": False, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # fmt: skip
    pre = parse_preprocessor_config(vit, BASE)
    assert (pre.resize, pre.resize_size, pre.crop_size) == ("squash", 384, 384)
    assert pre.mean == (0.5, 0.5, 0.5)
    bare_int_other = {"image_processor_type": "SiglipImageProcessor", "size": 224}
    assert parse_preprocessor_config(bare_int_other, BASE).resize == "squash"
    off = {"do_normalize": False, "do_rescale": False}
    pre = parse_preprocessor_config(off, BASE)
    assert (pre.rescale, pre.mean, pre.std) == (1.0, (0.0,) * 3, (1.0,) * 3)
    for bad in (
        {"do_resize": False},
        {"size": {"shortest_edge": 224}, "do_center_crop": False},
        {"size": {"height": 224, "width": 300}},
        {"crop_size": {"height": 224, "width": 200}},
        {"size": {"shortest_edge": 200}, "crop_size": 224},
        {"resample": 9},
        {"image_std": [0.5, 0.0, 0.5]},
        {"size": {"shortest_edge": 224, "longest_edge": 1000}},
    ):
        with pytest.raises(ValueError):
            parse_preprocessor_config(bad, BASE)
