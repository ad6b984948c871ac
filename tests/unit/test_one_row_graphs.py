"""Graphs that take one row a run: some exports fix the KV cache's batch axis (or the token
inputs') to a static 1. Found at load, such a graph runs each batch a row at a time, with the
vectors each text gets alone, and says so in `compute`; a cache no empty cache fits is refused in
the same words by the encoder and by the backends' load-time probe.

No model files: the sessions are stand-ins (tests/unit/test_last_token_pooling.py's causal one)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gateway.backends.base import GraphInfo, Placement, TensorInfo
from gateway.backends.kv_cache import one_row_inputs
from gateway.backends.probe import non_finite_outputs
from gateway.encoders.base import EncodeOptions
from gateway.encoders.decoder import DecoderInputs
from gateway.encoders.text import TextEncoder, stack_rows
from gateway.errors import ModelLoadError
from gateway.loaded import compute_description
from tests.unit.test_last_token_pooling import (
    IDS,
    CausalStates,
    decoder_graph,
    encoder,
    past,
    texts,
)

ONE_ROW_PAST = (1, 2, "past", 8)


class OneRowStates(CausalStates):
    """The causal stand-in, failing a run of more than one row as such a graph does."""

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows = {name: array.shape[0] for name, array in feed.items()}
        if set(rows.values()) != {1}:
            raise RuntimeError(f"Got invalid dimensions for input: index: 0 Got: {rows}")
        return super().run(names, feed)


def one_row_encoder() -> TextEncoder:
    subject = encoder()
    subject.session = OneRowStates()
    subject.decoder = DecoderInputs(
        "position_ids", (past(0, "key", ONE_ROW_PAST), past(0, "value", ONE_ROW_PAST))
    )
    subject.one_row_inputs = ("past_key_values.0.key", "past_key_values.0.value")
    return subject


def test_inputs_that_fix_the_batch_to_one_are_found() -> None:
    fixed = decoder_graph(past(0, "key", ONE_ROW_PAST), past(0, "value"))
    assert one_row_inputs(fixed.inputs) == ["past_key_values.0.key"]
    # OpenVINO reports an open axis as None, ONNX Runtime by its name (or None).
    open_axes = decoder_graph(past(0, "key", (None, 2, None, 8)), past(0, "value"))
    assert one_row_inputs(open_axes.inputs) == []
    token_inputs = (
        TensorInfo("input_ids", (1, "sequence"), "tensor(int64)"),
        TensorInfo("attention_mask", (1, None), "tensor(int64)"),
        TensorInfo("token_type_ids", IDS, "tensor(int64)"),
    )
    assert one_row_inputs(token_inputs) == ["input_ids", "attention_mask"]
    # A static sequence length or head count is not a static batch.
    assert one_row_inputs([TensorInfo("input_ids", ("batch", 1), "tensor(int64)")]) == []
    assert one_row_inputs([past(0, "key", ("batch", 1, 0, 1))]) == []


def test_a_one_row_graph_runs_a_mixed_batch_a_row_at_a_time_as_each_text_alone() -> None:
    subject = one_row_encoder()
    items = texts([3, 1, 4], [1, 5, 9, 2, 6, 5, 3, 5], [2], [7, 1, 8, 2])
    batched = subject.finish(subject.run(items), EncodeOptions())
    alone = np.concatenate([subject.finish(subject.run([i]), EncodeOptions()) for i in items])
    np.testing.assert_array_equal(batched, alone)
    feeds = subject.session.feeds  # type: ignore[attr-defined]
    # Each text ran alone, at its own length (no padding), with a cache of one row.
    assert [feed["input_ids"].shape for feed in feeds[:4]] == [(1, 3), (1, 8), (1, 1), (1, 4)]
    assert {feed["past_key_values.0.key"].shape for feed in feeds} == {(1, 2, 0, 8)}


def test_token_states_of_a_one_row_graph_are_each_text_own() -> None:
    subject = one_row_encoder()
    items = texts([3, 1, 4], [1, 5, 9, 2, 6])
    states = subject.token_states(items)
    assert [s.shape for s in states] == [(3, 4), (5, 4)]
    np.testing.assert_array_equal(states[0], subject.token_states(items[:1])[0])
    np.testing.assert_array_equal(states[1], subject.token_states(items[1:])[0])


def test_the_old_path_fails_such_a_graph() -> None:
    """Without the row split the stand-in fails, as a real one-row graph does."""
    subject = one_row_encoder()
    subject.one_row_inputs = ()
    with pytest.raises(RuntimeError, match="invalid dimensions"):
        subject.run(texts([3, 1, 4], [1, 5]))


def test_rows_are_stacked_as_one_batch_output() -> None:
    short = np.ones((1, 2, 3), np.float32)
    long = np.full((1, 4, 3), 2, np.float32)
    stacked = stack_rows([short, long])
    assert stacked.shape == (2, 4, 3) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[0, :2], short[0])
    np.testing.assert_array_equal(stacked[0, 2:], 0)  # padding: nothing reads it
    np.testing.assert_array_equal(stacked[1], long[0])
    pooled = stack_rows([np.ones((1, 5)), np.zeros((1, 5))])  # already pooled: no token axis
    assert pooled.shape == (2, 5)


class Described:
    """The part of an encoder compute_description reads."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.one_row_inputs = names


def test_compute_says_why_a_one_row_model_serves_fewer_inputs_a_second() -> None:
    placement = Placement("onnxruntime", "cpu", "fp32", "exact")
    names = ("past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key")
    compute = compute_description(Described(names), placement)  # type: ignore[arg-type]
    assert compute["backend"] == "onnxruntime" and compute["rows_per_run"] == 1
    reason = str(compute["rows_per_run_reason"])
    assert "past_key_values.0.key, past_key_values.0.value and 1 more" in reason
    plain = compute_description(Described(()), placement)  # type: ignore[arg-type]
    assert "rows_per_run" not in plain and plain == placement.describe()


class ProbedSession:
    """A backend session as the load-time probe sees it; it must not be run."""

    def __init__(self, graph: GraphInfo) -> None:
        self.graph = graph

    def graph_info(self) -> GraphInfo:
        return self.graph

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise AssertionError("a graph no empty cache fits was run")


@pytest.mark.parametrize(
    "cache",
    [past(0, "key", ("batch", None, "past", 8)), past(0, "key", type_="tensor(bfloat16)")],
    ids=["open heads", "bfloat16"],
)
def test_the_load_probe_refuses_a_cache_in_the_encoder_words(cache: TensorInfo) -> None:
    graph = decoder_graph(cache, past(0, "value"))
    with pytest.raises(ModelLoadError) as by_encoder:
        DecoderInputs.of(graph, "position_ids", "m")
    with pytest.raises(ModelLoadError) as by_probe:
        non_finite_outputs(ProbedSession(graph))  # type: ignore[arg-type]
    assert by_encoder.value.message == f"model m: {by_probe.value.message}"
    assert "past_key_values.0.key" in by_probe.value.message
    assert "use_cache=False" in by_probe.value.message
