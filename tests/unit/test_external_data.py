"""A graph whose weights sit in an external-data file beside it (model.onnx + model.onnx_data,
as the fp32 Qwen3-Embedding export ships) is sized with them: ONNX Runtime's optimized-graph
cache would write those weights inline, past protobuf's 2 GiB. And what is cached from the graph
(compiled OpenVINO model, optimized ORT graph) is keyed by the weights file too."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.backends.base import file_cache_key
from gateway.backends.ort_cpu import graph_bytes


def test_external_data_counts_toward_the_graph_size(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"g" * 10)
    assert graph_bytes(graph) == 10
    (tmp_path / "model.onnx_data").write_bytes(b"w" * 1000)
    (tmp_path / "other.onnx_data").write_bytes(b"x" * 5)  # another graph's weights
    assert graph_bytes(graph) == 1010


def test_replaced_external_weights_change_the_cache_key(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"g" * 10)
    alone = file_cache_key(graph, "v1")
    weights = tmp_path / "model.onnx_data"
    weights.write_bytes(b"w" * 1000)
    first = file_cache_key(graph, "v1")
    assert first != alone
    weights.write_bytes(b"W" * 1000)  # same size, new weights: a new mtime
    os.utime(weights, ns=(1, 1))
    assert file_cache_key(graph, "v1") != first
    assert file_cache_key(graph, "v1") == file_cache_key(graph, "v1")
