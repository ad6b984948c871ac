"""OpenVINO's compiled-model cache, for real: a replaced graph is compiled afresh, and a cached
graph that computes NaN is dropped and compiled again (it once came out of a compile broken and
crashed the server on long inputs; see gateway/backends/probe.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gateway.backends.base import Placement
from gateway.backends.openvino_cpu import OpenVinoBackend, OpenVinoOptions
from gateway.errors import ModelLoadError
from gateway.runtime import Runtime

BF16 = Placement("openvino", "cpu", "bf16", "test", bucketed=True)
FEED = {"input_ids": np.ones((1, 8), np.int64), "attention_mask": np.ones((1, 8), np.int64)}


def write_graph(path: Path, scale: float, mtime_ns: int | None = None) -> None:
    """last_hidden_state = attention_mask * scale, [batch, tokens, 4]: files of one size for
    every scale, NaN included."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", 4])
    weights = numpy_helper.from_array(np.full((1, 4), scale, np.float32), "w")
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axes"], ["m3"]),
        helper.make_node("Mul", ["m3", "w"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(nodes, "scale", [ids, mask], [out], [weights, axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def output(backend: OpenVinoBackend, path: Path) -> np.ndarray:
    return backend.load(path, BF16).run(None, FEED)[0]


def test_a_replaced_graph_of_the_same_size_is_compiled_afresh(tmp_path: Path) -> None:
    backend = OpenVinoBackend(OpenVinoOptions(2, tmp_path / "cache"))
    graph = tmp_path / "model.onnx"
    write_graph(graph, 2.0, mtime_ns=1_000_000_000_000_000_000)
    assert np.all(output(backend, graph) == 2.0)
    size = graph.stat().st_size
    write_graph(graph, 3.0, mtime_ns=1_000_000_001_000_000_000)  # a new file, one second later
    assert graph.stat().st_size == size  # OpenVINO alone would serve the old graph here
    assert np.all(output(backend, graph) == 3.0)
    folder = backend.cache_folder(graph, "bf16")
    assert folder is not None
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.name]  # the old one went


def test_a_new_compile_drops_what_older_layouts_left_and_keeps_other_graphs(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    backend = OpenVinoBackend(OpenVinoOptions(2, cache))
    other, graph = tmp_path / "other.onnx", tmp_path / "model.onnx"
    write_graph(other, 5.0)
    write_graph(graph, 2.0)
    assert np.all(output(backend, other) == 5.0)
    kept = backend.cache_folder(other, "bf16")
    assert kept is not None and kept.is_dir()
    flat_blob = cache / "7942739530615919593.blob"  # the first layout: one flat folder
    flat_blob.write_bytes(b"old compile")
    second_layout = cache / "model-0123456789abcdef"  # the second: <stem>-<key>
    second_layout.mkdir()
    (second_layout / "1.blob").write_bytes(b"old compile")
    assert np.all(output(backend, graph) == 2.0)
    folder = backend.cache_folder(graph, "bf16")
    assert folder is not None
    assert sorted(p.name for p in cache.iterdir()) == sorted([kept.name, folder.name])
    assert np.all(output(backend, other) == 5.0)  # still served from its own folder


def test_a_cached_graph_that_computes_nan_is_compiled_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = OpenVinoBackend(OpenVinoOptions(2, tmp_path / "cache"))
    graph, when = tmp_path / "model.onnx", 1_000_000_000_000_000_000
    write_graph(graph, 1.0, mtime_ns=when)
    folder = backend.cache_folder(graph, "bf16")
    assert folder is not None
    # Put a NaN-computing compile where this graph's entry goes: same path, size and mtime.
    write_graph(graph, float("nan"), mtime_ns=when)
    poisoned = backend.config("bf16") | {"CACHE_DIR": str(folder)}
    backend.core.compile_model(str(graph), "CPU", poisoned)
    (blob,) = folder.iterdir()
    write_graph(graph, 1.0, mtime_ns=when)
    assert backend.cache_folder(graph, "bf16") == folder
    with caplog.at_level(logging.WARNING, logger="gateway.backends.openvino_cpu"):
        assert np.all(output(backend, graph) == 1.0)
    assert "non-finite last_hidden_state" in caplog.text
    assert [p.name for p in folder.iterdir()] == [blob.name]  # written again, this time good
    caplog.clear()
    assert np.all(output(backend, graph) == 1.0)  # and loaded from there with no warning
    assert caplog.text == ""


def test_a_graph_that_computes_nan_fails_to_load_clearly(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    write_graph(graph, float("nan"))
    for cache in (tmp_path / "cache", None):
        with pytest.raises(ModelLoadError, match=r"non-finite last_hidden_state.*precision fp32"):
            OpenVinoBackend(OpenVinoOptions(2, cache)).load(graph, BF16)


def test_the_runtime_passes_the_probes_words_on(tmp_path: Path) -> None:
    """Loaded through the Runtime, the refusal reads as the backend wrote it, not wrapped in a
    second "cannot load model.onnx: ..."."""
    graph = tmp_path / "model.onnx"
    write_graph(graph, float("nan"))
    runtime = Runtime(device="cpu", threads=2, backend="openvino", precision="bf16")
    with pytest.raises(ModelLoadError) as caught:
        runtime.load(graph)
    assert caught.value.message.startswith("OpenVINO bf16 computes non-finite last_hidden_state")
