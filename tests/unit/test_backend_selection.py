"""Backend seam, no model files: the `auto` rules, shape buckets, and bucket-aware batch cuts."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gateway.backends.buckets import bucket_length, pad_feed, pad_for, trim_outputs
from gateway.backends.ort_cpu import OrtOptions
from gateway.backends.ort_cuda import OrtCudaBackend
from gateway.backends.selection import PlacementError, bf16_support, cpu_flags, place
from gateway.batching import _Entry, _Job, cut_batch
from gateway.registry import parse_entry
from gateway.runtime import Runtime

AMX = frozenset({"avx512f", "amx_bf16", "amx_tile"})
PLAIN = frozenset({"avx2", "fma"})


def test_auto_on_a_bf16_cpu_is_openvino_bf16_bucketed() -> None:
    chosen = place("auto", "auto", cuda=False, flags=AMX, openvino=True)
    assert (chosen.backend, chosen.precision, chosen.bucketed) == ("openvino", "bf16", True)
    assert "AMX-BF16" in chosen.reason


def test_auto_elsewhere_is_fp32() -> None:
    chosen = place("auto", "auto", cuda=False, flags=PLAIN, openvino=True)
    assert (chosen.backend, chosen.precision) == ("openvino", "fp32")
    assert "no AMX" in chosen.reason
    without = place("auto", "auto", cuda=False, flags=AMX, openvino=False)
    assert (without.backend, without.precision, without.bucketed) == ("onnxruntime", "fp32", False)
    assert "not installed" in without.reason


def test_fp32_with_auto_backend_is_the_exact_mode() -> None:
    chosen = place("auto", "fp32", cuda=False, flags=AMX, openvino=True)
    assert (chosen.backend, chosen.bucketed) == ("onnxruntime", False)


def test_auto_on_cuda_is_fp16_and_openvino_stays_on_the_cpu() -> None:
    chosen = place("auto", "auto", cuda=True, flags=AMX, openvino=True)
    assert (chosen.backend, chosen.device, chosen.precision) == ("onnxruntime", "cuda", "fp16")
    assert place("auto", "fp32", cuda=True, flags=AMX, openvino=True).precision == "fp32"
    ov = place("openvino", "auto", cuda=True, flags=AMX, openvino=True)
    assert (ov.backend, ov.device) == ("openvino", "cpu")


@pytest.mark.parametrize(
    ("backend", "precision", "cuda", "openvino", "says"),
    [
        ("auto", "int8", False, True, "calibrated"),
        ("onnxruntime", "bf16", False, True, "openvino"),
        ("auto", "fp16", False, True, "CUDA only"),
        ("openvino", "auto", False, False, "missing"),
        ("auto", "bf16", True, True, "not offered on CUDA"),
    ],
)
def test_combinations_that_cannot_run_say_why(
    backend: str, precision: str, cuda: bool, openvino: bool, says: str
) -> None:
    with pytest.raises(PlacementError, match=says):
        place(backend, precision, cuda=cuda, flags=AMX, openvino=openvino)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    flags = cpu_flags(info)
    assert bf16_support(flags) == "AVX512-BF16"
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_a_model_entry_overrides_the_process_setting() -> None:
    runtime = Runtime(backend="auto", precision="auto")
    files = {"model": {"path": "m.onnx"}, "tokenizer": {"path": "t.json"}}
    entry = {"source": "/x", "files": files, "dim": 4, "kind": "text"}
    entry.update(backend="onnxruntime", precision="fp32")
    bound = runtime.for_model(parse_entry("m", entry))
    assert (bound.backend, bound.precision) == ("onnxruntime", "fp32")
    assert (runtime.backend, runtime.precision) == ("auto", "auto")
    assert bound.placement().backend == "onnxruntime"


def test_buckets_grow_with_length_and_never_shrink_a_sequence() -> None:
    assert [bucket_length(n) for n in (1, 8, 9, 64, 65, 130, 257, 513)] == [
        8,
        8,
        16,
        64,
        80,
        160,
        320,
        640,
    ]
    for n in range(1, 2000):
        padded = bucket_length(n)
        assert n <= padded <= max(n * 1.3, n + 8)


def test_coarser_steps_start_past_16_tokens() -> None:
    lengths = (1, 8, 9, 16, 17, 24, 33, 49, 64, 65, 130, 257)
    assert [bucket_length(n, 16) for n in lengths] == [
        8,
        8,
        16,
        16,
        32,
        32,
        48,
        64,
        64,
        80,
        160,
        320,
    ]
    for n in range(1, 2000):
        assert bucket_length(n, 8) <= bucket_length(n, 16) <= max(n * 1.9, n + 16)


def test_bf16_on_amx_asks_for_16_token_steps_and_fp32_keeps_8() -> None:
    assert place("auto", "auto", cuda=False, flags=AMX, openvino=True).bucket_step == 16
    avx512_bf16 = frozenset({"avx512f", "avx512_bf16"})
    assert place("auto", "auto", cuda=False, flags=avx512_bf16, openvino=True).bucket_step == 8
    fp32 = place("auto", "auto", cuda=False, flags=frozenset({"avx512f"}), openvino=True)
    assert (fp32.precision, fp32.bucket_step) == ("fp32", 8)
    ids = np.ones((2, 20), dtype=np.int64)
    assert pad_feed({"input_ids": ids}, 16)[0]["input_ids"].shape == (2, 32)


def test_sessions_pad_with_their_placements_step() -> None:
    ids = np.ones((2, 20), dtype=np.int64)
    amx = place("auto", "auto", cuda=False, flags=AMX, openvino=True)
    padded, length, width = pad_for(amx, {"input_ids": ids})
    assert (length, width) == (20, 32) and padded["input_ids"].shape == (2, 32)
    assert bucket_length(20, amx.bucket_step) == 32  # what the batcher cuts with
    exact = place("auto", "fp32", cuda=False, flags=AMX, openvino=True)
    assert not exact.bucketed
    assert pad_for(exact, {"input_ids": ids})[0]["input_ids"] is ids


def test_pad_feed_pads_token_inputs_and_trim_restores_the_length() -> None:
    ids = np.arange(1, 11, dtype=np.int64).reshape(1, 10)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "pixels": np.zeros((1, 3))}
    padded, length, width = pad_feed(feed)
    assert (length, width) == (10, 16)
    assert padded["input_ids"].shape == (1, 16) and padded["attention_mask"][0, 10:].sum() == 0
    assert padded["pixels"] is feed["pixels"]
    hidden, pooled = np.zeros((1, 16, 4)), np.zeros((1, 4))
    trimmed = trim_outputs([hidden, pooled], length, width)
    assert trimmed[0].shape == (1, 10, 4) and trimmed[1].shape == (1, 4)


@dataclass
class Sized:
    length: int


def entries(lengths: list[int]) -> list[_Entry]:
    loop = asyncio.new_event_loop()
    try:
        job = _Job(loop.create_future(), [None] * len(lengths), len(lengths))
    finally:
        loop.close()
    return [_Entry(job, i, Sized(n)) for i, n in enumerate(lengths)]


def test_a_bucketed_batch_never_spans_two_buckets() -> None:
    window = entries([20, 30, 9, 14, 31, 33, 12])  # oldest: 20 -> bucket 24
    batch = cut_batch(
        window, max_size=32, max_tokens=10_000, overhead_tokens=1e9, bucket=bucket_length
    )
    assert sorted(e.length for e in batch) == [20]
    assert {bucket_length(e.length) for e in batch} == {24}
    unbucketed = cut_batch(window, max_size=32, max_tokens=10_000, overhead_tokens=1e9)
    assert len(unbucketed) == len(window)


def test_auto_keeps_cross_encoders_in_fp32_where_bf16_moved_scores_too_far() -> None:
    chosen = place("auto", "auto", cuda=False, flags=AMX, openvino=True, kind="cross-encoder")
    assert (chosen.backend, chosen.precision, chosen.bucketed) == ("openvino", "fp32", True)
    assert "2.1e-2" in chosen.reason
    asked = place("auto", "bf16", cuda=False, flags=AMX, openvino=True, kind="cross-encoder")
    assert asked.precision == "bf16"


def test_fp16_conversions_are_keyed_like_every_graph_cache(tmp_path: Path) -> None:
    """A replaced graph (same size, new mtime) gets a new fp16 file; an untouched one keeps its."""
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph one")
    backend = OrtCudaBackend(OrtOptions(threads=1, spin=False, cache_dir=tmp_path / "cache"))
    first = backend.fp16_path(graph)
    assert first == backend.fp16_path(graph) and first.parent == tmp_path / "cache"
    graph.write_bytes(b"graph two")  # same size
    os.utime(graph, ns=(1, 1))
    assert backend.fp16_path(graph) != first


def test_dynamically_quantized_graphs_are_never_padded() -> None:
    """Pad rows would enter the per-tensor activation range such a graph computes at run time;
    `auto` on a CPU runs it in the exact mode, asked-for backends unpadded."""
    for flags in (AMX, PLAIN):
        chosen = place(
            "auto", "auto", cuda=False, flags=flags, openvino=True, dynamic_quantization=True
        )
        assert (chosen.backend, chosen.precision, chosen.bucketed) == ("onnxruntime", "fp32", False)
        assert "dynamically" in chosen.reason
    for backend, precision in [("openvino", "auto"), ("openvino", "bf16"), ("auto", "bf16")]:
        asked = place(
            backend, precision, cuda=False, flags=AMX, openvino=True, dynamic_quantization=True
        )
        assert (asked.backend, asked.bucketed) == ("openvino", False)
    on_gpu = place("auto", "auto", cuda=True, flags=AMX, openvino=True, dynamic_quantization=True)
    assert (on_gpu.device, on_gpu.bucketed) == ("cuda", False)


@pytest.mark.parametrize("offset", range(0, 12))
def test_the_dynamic_quantization_scan_finds_ops_across_read_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: int
) -> None:
    """The graph is read in chunks (a mapping would turn a file cut mid-scan into SIGBUS): an op
    name split across two chunks is still found."""
    from gateway.backends import base

    monkeypatch.setattr(base, "SCAN_CHUNK_BYTES", 8)
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"x" * offset + b"DynamicQuantizeMatMul" + b"y" * 5)
    assert base.uses_dynamic_quantization(graph)
    graph.write_bytes(b"x" * offset + b"DynamicQuantizeMatMu" + b"y" * 5)
    assert not base.uses_dynamic_quantization(graph)
