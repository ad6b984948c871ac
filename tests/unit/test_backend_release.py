"""Each CPU backend's release_memory gives back what a large run left in the runtime (ONNX
Runtime's arena, OpenVINO's intermediate buffers). A made-up graph with one large
intermediate ([batch, tokens, 4096] floats: 256 MiB at 64 x 256) stands in for a model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gateway.backends.base import BackendSession, Placement
from gateway.memory import process_anonymous, release_free_heap

MIB = 1 << 20
WIDE = 4096


def write_wide_graph(path: Path) -> None:
    """out[b, s] = sum over WIDE of float(input_ids)[b, s, 1] x w[1, WIDE]."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "s"])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [1, WIDE], [0.5] * WIDE)
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [-1])
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["x", "axes"], ["x3"]),
        helper.make_node("MatMul", ["x3", "w"], ["wide"]),
        helper.make_node("ReduceSum", ["wide", "axes"], ["out"], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "wide", [ids], [out], initializer=[weights, axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def ort_session(path: Path) -> BackendSession:
    from gateway.backends.ort_cpu import OrtCpuBackend, OrtOptions

    backend = OrtCpuBackend(OrtOptions(threads=2, spin=False, cache_dir=None))
    return backend.load(path, Placement("onnxruntime", "cpu", "fp32", "test"))


def openvino_session(path: Path) -> BackendSession:
    from gateway.backends.openvino_cpu import OpenVinoBackend, OpenVinoOptions

    backend = OpenVinoBackend(OpenVinoOptions(threads=2, cache_dir=None))
    return backend.load(path, Placement("openvino", "cpu", "fp32", "test"))


@pytest.mark.parametrize("load", [ort_session, openvino_session])
def test_release_memory_gives_back_a_large_run_working_memory(
    load: Callable[[Path], BackendSession], tmp_path: Path
) -> None:
    graph = tmp_path / "wide.onnx"
    write_wide_graph(graph)
    session = load(graph)
    small = {"input_ids": np.ones((1, 8), dtype=np.int64)}
    session.run(None, small)
    release_free_heap()
    idle = process_anonymous()
    (out,) = session.run(None, {"input_ids": np.ones((64, 256), dtype=np.int64)})
    assert out[0, 0] == WIDE * 0.5
    release_free_heap()
    held = process_anonymous() - idle
    assert held > 128 * MIB  # the runtime kept the 256 MiB intermediate (or most of it)
    session.release_memory()
    release_free_heap()
    assert process_anonymous() - idle < 32 * MIB
    (again,) = session.run(None, small)  # it still runs, allocating afresh
    assert again[0, 0] == WIDE * 0.5
