"""A graph whose weights sit in an external-data file beside it (model.onnx + model.onnx_data,
as the fp32 Qwen3-Embedding export ships) is sized with them: ONNX Runtime's optimized-graph
cache would write those weights inline, past protobuf's 2 GiB."""

from __future__ import annotations

from pathlib import Path

from gateway.backends.ort_cpu import graph_bytes


def test_external_data_counts_toward_the_graph_size(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"g" * 10)
    assert graph_bytes(graph) == 10
    (tmp_path / "model.onnx_data").write_bytes(b"w" * 1000)
    (tmp_path / "other.onnx_data").write_bytes(b"x" * 5)  # another graph's weights
    assert graph_bytes(graph) == 1010
