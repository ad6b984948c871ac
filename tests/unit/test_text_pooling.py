"""A text embedder pools on the device thread: what a run hands back (and a request holds
until its last batch ends) is one vector per input, not views into the batch's padded hidden
states. No model files: the session is a stand-in that returns made-up hidden states."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gateway.encoders import TextEncoder
from gateway.encoders.text import TokenizedText
from gateway.registry import parse_entry
from gateway.run_memory import held_bytes

HIDDEN = 16
FILES = {"model": "m.onnx", "tokenizer": "t.json"}


class HiddenStates:
    """A session whose output is [rows, padded length, HIDDEN] of made-up floats."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows, length = feed["input_ids"].shape
        return [self.rng.standard_normal((rows, length, HIDDEN)).astype(np.float32)]


def encoder(pooling: str) -> TextEncoder:
    """A TextEncoder around the stand-in session (its __init__ would load files)."""
    subject = object.__new__(TextEncoder)
    subject.spec = parse_entry(  # type: ignore[assignment]
        "t", {"kind": "text", "source": "/x", "files": FILES, "dim": HIDDEN, "pooling": pooling}
    )
    subject.session = HiddenStates()
    subject.pad_id = 0
    subject.input_names = {role: role for role in ("input_ids", "attention_mask")}
    subject.output_name, subject.output_is_pooled = "last_hidden_state", False
    return subject


def texts(*lengths: int) -> list[TokenizedText]:
    return [
        TokenizedText(np.arange(1, n + 1, dtype=np.int64), np.zeros(n, np.int64), False)
        for n in lengths
    ]


def test_a_run_hands_back_one_vector_per_input_not_the_batch_hidden_states() -> None:
    """64 inputs of 256 tokens: the old raw arrays were views that kept the run's whole
    [64, 256, hidden] output alive (25 MiB for MiniLM) until the request's last batch ended."""
    items = texts(*([256] * 63), 3)
    raw = encoder("mean").run(items)
    assert [row.shape for row in raw] == [(HIDDEN,)] * len(items)
    assert held_bytes(raw) <= len(items) * HIDDEN * 4


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooled_rows_are_each_input_own_rows_reduced(pooling: str) -> None:
    subject = encoder(pooling)
    items = texts(5, 2, 9)
    states = subject.token_states(items)  # per-token rows, padding dropped
    assert [s.shape for s in states] == [(5, HIDDEN), (2, HIDDEN), (9, HIDDEN)]
    subject.session = HiddenStates()  # the same made-up states again
    pooled = subject.pool(subject.run(items))
    expected = [s.mean(axis=0) if pooling == "mean" else s[0] for s in states]
    assert pooled.dtype == np.float32
    np.testing.assert_array_equal(pooled, np.stack(expected))
