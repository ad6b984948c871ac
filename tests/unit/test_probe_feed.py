"""The load-time probe's input: one row a graph of any kind accepts."""

from __future__ import annotations

import numpy as np

from gateway.backends.base import TensorInfo
from gateway.backends.probe import PROBE_SIDE, PROBE_TOKENS, probe_feed


def test_token_inputs_get_one_row_of_valid_ids_masks_and_segments() -> None:
    feed = probe_feed(
        (
            TensorInfo("input_ids", ("batch", "sequence"), "tensor(int64)"),
            TensorInfo("attention_mask", (None, None), "tensor(int64)"),
            TensorInfo("token_type_ids", ("batch", "sequence"), "tensor(int64)"),
        )
    )
    assert {name: a.shape for name, a in feed.items()} == dict.fromkeys(feed, (1, PROBE_TOKENS[0]))
    assert feed["input_ids"].dtype == np.int64
    assert (feed["input_ids"] == 1).all() and (feed["attention_mask"] == 1).all()
    assert (feed["token_type_ids"] == 0).all()  # a graph may know one segment only
    longer = probe_feed((TensorInfo("input_ids", ("b", "s"), "tensor(int64)"),), tokens=16)
    assert longer["input_ids"].shape == (1, 16)


def test_image_inputs_keep_static_sizes_and_fill_open_ones() -> None:
    fixed = probe_feed((TensorInfo("pixel_values", (None, 3, 384, 384), "tensor(float)"),))
    assert fixed["pixel_values"].shape == (1, 3, 384, 384)
    assert fixed["pixel_values"].dtype == np.float32 and not fixed["pixel_values"].any()
    open_size = probe_feed((TensorInfo("pixel_values", ("b", 3, "h", "w"), "tensor(float16)"),))
    assert open_size["pixel_values"].shape == (1, 3, PROBE_SIDE, PROBE_SIDE)
    assert open_size["pixel_values"].dtype == np.float16
