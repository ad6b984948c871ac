"""What an encoder's run hands back owns its memory: a request holds its raw arrays until its
last batch ends (a batch is shared with other requests), so one input's row must not be a view
that keeps the whole batch's output alive. No model files: sessions are stand-ins that return
made-up outputs of the graph's shape."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gateway.encoders import TextEncoder
from gateway.encoders.late import LateInteractionEncoder, LateTokens
from gateway.encoders.text import TokenizedText
from gateway.encoders.vision import PixelInput, PreparedImage, VisionEncoder
from gateway.registry import parse_entry
from gateway.run_memory import held_bytes

WIDTH = 16
TOKENS = 197  # a ViT-B/16's tokens at 224 pixels


class Outputs:
    """A session whose output is made-up floats of shape `shape(feed)`."""

    def __init__(self, shape: str) -> None:
        self.shape = shape
        self.rng = np.random.default_rng(0)

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows = next(iter(feed.values())).shape[0]
        dims = {"pooled": (rows, WIDTH), "tokens": (rows, TOKENS, WIDTH), "logits": (rows, 1)}
        return [self.rng.standard_normal(dims[self.shape]).astype(np.float32)]


def assert_each_row_owns_its_memory(raw: list[np.ndarray]) -> None:
    """Held alone, each row keeps no more than its own bytes."""
    assert [held_bytes([row]) for row in raw] == [row.nbytes for row in raw]


def vision(pooling: str, output: str) -> VisionEncoder:
    subject = object.__new__(VisionEncoder)
    subject.spec = parse_entry(  # type: ignore[assignment]
        "v",
        {"kind": "image", "source": "/x", "files": {"model": "m.onnx"}, "dim": WIDTH}
        | {"pooling": pooling},
    )
    subject.session = Outputs(output)
    subject.pixel_input = PixelInput("pixel_values", "nchw_float", np.float32)
    subject.output_name, subject.output_is_pooled = "out", output == "pooled"
    return subject


def images(count: int) -> list[PreparedImage]:
    return [PreparedImage(np.zeros((3, 4, 4), np.float32), TOKENS) for _ in range(count)]


@pytest.mark.parametrize(
    ("pooling", "output"), [("cls", "tokens"), ("mean", "tokens"), ("none", "pooled")]
)
def test_an_image_run_hands_back_one_pooled_vector_per_image(pooling: str, output: str) -> None:
    """The token states of a ViT batch ([64, 197, 768] float32: 37 MiB) were handed back as
    per-image views, kept until the request's last batch ended, other requests' images
    included."""
    subject = vision(pooling, output)
    raw = subject.run(images(5))
    assert [row.shape for row in raw] == [(WIDTH,)] * 5
    assert_each_row_owns_its_memory(raw)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_an_image_run_pools_as_before(pooling: str) -> None:
    """The vectors are those the token states gave when pooling happened in finish."""
    subject = vision(pooling, "tokens")
    (states,) = Outputs("tokens").run(None, {"pixel_values": np.zeros((3, 1))})
    expected = states.mean(axis=1) if pooling == "mean" else states[:, 0]
    np.testing.assert_array_equal(subject.pool(subject.run(images(3))), expected)


def text_with_pooled_output() -> TextEncoder:
    subject = object.__new__(TextEncoder)
    subject.spec = parse_entry(  # type: ignore[assignment]
        "t",
        {"kind": "text", "source": "/x", "files": {"model": "m.onnx", "tokenizer": "t.json"}}
        | {"dim": WIDTH},
    )
    subject.session = Outputs("pooled")
    subject.pad_id = 0
    subject.input_names = {"input_ids": "input_ids", "attention_mask": "attention_mask"}
    subject.output_name, subject.output_is_pooled = "sentence_embedding", True
    return subject


def texts(count: int) -> list[TokenizedText]:
    return [TokenizedText(np.arange(1, 5), np.zeros(4, np.int64), False) for _ in range(count)]


def test_a_text_run_with_a_pooled_output_hands_back_rows_of_their_own() -> None:
    raw = text_with_pooled_output().run(texts(64))
    assert [row.shape for row in raw] == [(WIDTH,)] * 64
    assert_each_row_owns_its_memory(raw)


def test_a_late_interaction_run_hands_back_rows_of_their_own() -> None:
    """ColBERT rows are picked by a boolean mask, which copies: a guard, not a fix."""
    subject = object.__new__(LateInteractionEncoder)
    subject.session = Outputs("tokens")
    subject.mask_id = 0
    subject.input_names = {"input_ids": "input_ids", "attention_mask": "attention_mask"}
    subject.output_name = "output"
    keep = np.array([True, True, False, True])
    items = [LateTokens(np.arange(1, 5), np.ones(4, np.int64), keep, False, False, 4)] * 8
    raw = subject.run(items)
    assert [row.shape for row in raw] == [(3, WIDTH)] * 8
    assert_each_row_owns_its_memory(raw)
