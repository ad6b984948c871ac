"""OpenVinoSession hands a batch's arrays to OpenVINO as the request's own tensors (no copy,
no Python data dispatcher): each run must see its own inputs, in the graph's integer type,
whatever array it is given (strided, read-only, 0-d), and return outputs that later runs do
not overwrite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from gateway.backends.base import Placement
from gateway.backends.openvino_cpu import OpenVinoBackend, OpenVinoOptions, OpenVinoSession

UNPADDED = Placement("openvino", "cpu", "fp32", "test", bucketed=False)


def write_graph(path: Path) -> None:
    """out = float(input_ids) * float(attention_mask), [batch, tokens]; input_ids is int32,
    as some exports declare it, while the gateway's encoders feed int64."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["b", "s"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "s"])
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["i"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["i", "m"], ["out"]),
    ]
    _save(path, helper.make_graph(nodes, "masked_ids", [ids, mask], [out]))


def write_scaled_graph(path: Path) -> None:
    """out = x * float(scale), with `scale` a 0-d int64 input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])
    scale = helper.make_tensor_value_info("scale", TensorProto.INT64, [])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", 4])
    nodes = [
        helper.make_node("Cast", ["scale"], ["s"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "s"], ["out"]),
    ]
    _save(path, helper.make_graph(nodes, "scaled", [x, scale], [out]))


def _save(path: Path, graph: onnx.GraphProto) -> None:
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def session(tmp_path: Path, write: Callable[[Path], None] = write_graph) -> OpenVinoSession:
    graph = tmp_path / "model.onnx"
    write(graph)
    loaded = OpenVinoBackend(OpenVinoOptions(2, cache_dir=None)).load(graph, UNPADDED)
    assert isinstance(loaded, OpenVinoSession)
    return loaded


def feed(ids: np.ndarray) -> dict[str, np.ndarray]:
    mask = (ids % 3 != 0).astype(np.int64)
    return {"input_ids": ids.astype(np.int64), "attention_mask": mask}


def expected(batch: dict[str, np.ndarray]) -> np.ndarray:
    return (batch["input_ids"] * batch["attention_mask"]).astype(np.float32)


def test_each_run_sees_its_own_inputs_and_keeps_its_outputs(tmp_path: Path) -> None:
    ov = session(tmp_path)
    shapes = [(1, 5), (3, 16), (2, 7), (3, 16)]
    batches = [feed(np.arange(b * s).reshape(b, s) + 10 * k) for k, (b, s) in enumerate(shapes)]
    results = [ov.run(None, batch)[0] for batch in batches]
    for batch, result in zip(batches, results, strict=True):
        np.testing.assert_array_equal(result, expected(batch))  # int64 fed to an int32 input


def test_a_strided_view_is_read_as_its_values(tmp_path: Path) -> None:
    """A non-contiguous array (a column slice) must not be bound as raw memory."""
    ov = session(tmp_path)
    wide = np.arange(4 * 12, dtype=np.int64).reshape(4, 12) % 5
    mask = wide[:, ::2]  # int64, as the graph wants: nothing else would copy it
    batch = {"input_ids": np.full(mask.shape, 3, np.int64), "attention_mask": mask}
    np.testing.assert_array_equal(ov.run(None, batch)[0], expected(batch))


def test_caller_changes_after_a_run_do_not_reach_its_result(tmp_path: Path) -> None:
    ov = session(tmp_path)
    batch = feed(np.arange(8).reshape(2, 4) + 1)
    first = ov.run(None, batch)[0]
    kept = first.copy()
    batch["input_ids"][:] = 0  # the session may still point into this array
    ov.run(None, feed(np.full((2, 4), 7)))
    np.testing.assert_array_equal(first, kept)


def test_a_read_only_array_is_read_not_refused(tmp_path: Path) -> None:
    """OpenVINO refuses to share a read-only array; one made from bytes must still run."""
    ov = session(tmp_path)
    mask = np.frombuffer(np.array([1, 0, 1, 1, 0, 1], np.int64).tobytes(), np.int64)[None]
    assert not mask.flags.writeable  # int64, as the graph wants: nothing else would copy it
    batch = {"input_ids": np.arange(6, dtype=np.int64)[None] + 1, "attention_mask": mask}
    np.testing.assert_array_equal(ov.run(None, batch)[0], expected(batch))


def test_a_scalar_input_stays_a_scalar(tmp_path: Path) -> None:
    ov = session(tmp_path, write_scaled_graph)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    result = ov.run(None, {"x": x, "scale": np.array(3, np.int64)})[0]
    np.testing.assert_array_equal(result, x * 3)
