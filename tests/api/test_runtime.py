"""Runtime: the optimized-graph cache, and models that quantize activations dynamically."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from gateway.backends.ort_cpu import OrtCpuBackend, OrtOptions
from gateway.backends.ort_cuda import OrtCudaBackend
from gateway.encoders import EncodeOptions
from gateway.encoders.text import TextEncoder
from gateway.registry import TextModelSpec, parse_entry
from gateway.runtime import Runtime, uses_dynamic_quantization
from tools.exports import cached_export, export_minilm_fp32
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

AUTO = {"GATEWAY_BACKEND": "auto", "GATEWAY_PRECISION": "auto"}
TEXTS = ["hello world", "a cat sits on the mat " * 12, "x", "Ünïcödé text, with punctuation!"]


def encoder_for(model_dir: Path, runtime: Runtime) -> tuple[TextModelSpec, TextEncoder]:
    spec = parse_entry("m", minilm_entry(model_dir))
    assert isinstance(spec, TextModelSpec)
    paths = {"model": model_dir / "model.onnx", "tokenizer": model_dir / "tokenizer.json"}
    return spec, TextEncoder(spec, paths, runtime)


def pooled(encoder: TextEncoder) -> np.ndarray:
    return encoder.pool(encoder.run(encoder.prepare(TEXTS, EncodeOptions())))


def test_cached_optimized_graph_gives_identical_vectors(
    default_model_dir: Path, tmp_path: Path
) -> None:
    _, fresh = encoder_for(default_model_dir, Runtime(cache_dir=None))
    expected = pooled(fresh)
    runtime = Runtime(cache_dir=tmp_path)
    _, first = encoder_for(default_model_dir, runtime)  # optimizes and writes the cache
    cached = list(tmp_path.glob("*.onnx"))
    assert len(cached) == 1
    written = cached[0].stat().st_mtime_ns
    _, second = encoder_for(default_model_dir, runtime)  # loads the cached graph as is
    assert cached[0].stat().st_mtime_ns == written
    assert np.array_equal(pooled(first), expected)
    assert np.array_equal(pooled(second), expected)


def test_a_damaged_cache_entry_is_rebuilt(default_model_dir: Path, tmp_path: Path) -> None:
    runtime = Runtime(cache_dir=tmp_path)
    _, reference = encoder_for(default_model_dir, runtime)
    (entry,) = tmp_path.glob("*.onnx")
    entry.write_bytes(b"not an onnx graph")
    _, rebuilt = encoder_for(default_model_dir, runtime)
    assert entry.stat().st_size > 1_000_000
    assert np.array_equal(pooled(rebuilt), pooled(reference))


def _copy_model(source: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copyfile(source / name, folder / name)
    return folder


def _replace(graph: Path) -> None:
    """The same file written again: a new mtime, so a new cache key."""
    graph.write_bytes(graph.read_bytes())
    os.utime(graph, ns=(graph.stat().st_atime_ns, graph.stat().st_mtime_ns + 10**9))


def test_a_replaced_graph_leaves_one_cached_entry(default_model_dir: Path, tmp_path: Path) -> None:
    """A new entry drops its file's older ones, first-layout names and dead partial writes; other
    files' entries (same stem, other folder) and a live process's partial write stay."""
    one = _copy_model(default_model_dir, tmp_path / "one")
    two = _copy_model(default_model_dir, tmp_path / "two")
    cache = tmp_path / "cache"
    runtime = Runtime(cache_dir=cache)
    _, first = encoder_for(one, runtime)
    encoder_for(two, runtime)
    (old_one,) = [p for p in cache.glob("*.onnx") if p.name.startswith(_owner(one, runtime))]
    (other,) = [p for p in cache.glob("*.onnx") if p != old_one]
    first_layout = cache / "model-0123456789abcdef.onnx"
    dead = cache / f"{old_one.stem}.{2**22 + 12345}.partial.onnx"  # past pid_max: gone
    live = cache / f"{old_one.stem}.{os.getpid()}.partial.onnx"
    for planted in (first_layout, dead, live):
        planted.write_bytes(b"left behind")
    _replace(one / "model.onnx")
    _, second = encoder_for(one, runtime)
    (new_one,) = [
        p
        for p in cache.glob("*.onnx")
        if p.name.startswith(_owner(one, runtime)) and not p.name.endswith(".partial.onnx")
    ]
    assert new_one != old_one
    assert sorted(cache.iterdir()) == sorted([new_one, other, live])
    assert np.array_equal(pooled(first), pooled(second))


def _owner(model_dir: Path, runtime: Runtime) -> str:
    """`<stem>-opt-<owner>-` of the model's optimized-graph entries."""
    backend = OrtCpuBackend(OrtOptions(runtime.threads, runtime.spin, runtime.cache_dir))
    entry = backend.optimized_path(model_dir / "model.onnx")
    assert entry is not None
    return entry.name[: -len("0123456789abcdef.onnx")]


def test_a_replaced_graph_leaves_one_fp16_conversion(
    default_model_dir: Path, tmp_path: Path
) -> None:
    """The CUDA path's fp16 conversions (run here on the CPU-only onnxruntime): a new one drops
    the file's older one and what was cached from it."""
    model = _copy_model(default_model_dir, tmp_path / "model")
    graph = model / "model.onnx"
    cache = tmp_path / "cache"
    backend = OrtCudaBackend(OrtOptions(threads=2, spin=False, cache_dir=cache))
    placement = Runtime(assume_cuda=True, backend="onnxruntime", precision="fp16").placement()
    backend.load(graph, placement)
    old = backend.fp16_path(graph)
    derived = [p for p in cache.iterdir() if p != old]
    assert old.is_file() and derived  # the fp16 graph and its optimized form
    _replace(graph)
    backend.load(graph, placement)
    new = backend.fp16_path(graph)
    assert new != old and new.is_file()
    assert not old.exists() and not any(p.exists() for p in derived)
    assert len(list(cache.iterdir())) == 2


def _quantize_dynamic(folder: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = export_minilm_fp32()
    quantize_dynamic(source / "model.onnx", folder / "model.onnx", weight_type=QuantType.QInt8)
    (folder / "tokenizer.json").write_bytes((source / "tokenizer.json").read_bytes())


@pytest.fixture(scope="module")
def dynamic_int8_dir() -> Path:
    """all-MiniLM-L6-v2 with onnxruntime's default dynamic quantization (per-batch scales)."""
    return cached_export("all-minilm-dynamic-int8", "qint8-r1", _quantize_dynamic)


def test_dynamic_quantization_is_detected(dynamic_int8_dir: Path, default_model_dir: Path) -> None:
    assert uses_dynamic_quantization(dynamic_int8_dir / "model.onnx")
    # The bundled default is quantized weight-only: batch-invariant, batched normally.
    assert not uses_dynamic_quantization(default_model_dir / "model.onnx")
    assert not uses_dynamic_quantization(export_minilm_fp32() / "model.onnx")


@pytest.fixture(scope="module")
def dynamic_server(
    tmp_path_factory: pytest.TempPathFactory, dynamic_int8_dir: Path
) -> Iterator[GatewayServer]:
    directory = tmp_path_factory.mktemp("dynamic")
    registry = write_registry(
        directory / "registry.yaml",
        {"dyn": minilm_entry(dynamic_int8_dir)},
        default_model="dyn",
    )
    # The default placement (test servers otherwise run the exact mode): what users get.
    with GatewayServer(registry=registry, env=AUTO) as server:
        yield server


def test_dynamically_quantized_model_never_mixes_inputs(dynamic_server: GatewayServer) -> None:
    """Each input runs alone, so its vector is the same whatever it is sent with."""
    probe = "the same sentence, sent alone and with company"
    company = [f"companion text number {i} " * (1 + i % 9) for i in range(31)]
    with dynamic_server.client() as client:
        alone = client.post("/api/embed", json={"model": "dyn", "input": probe}).json()
        mixed = client.post("/api/embed", json={"model": "dyn", "input": [*company, probe]})
        rows = client.get("/admin/models").json()["models"]
    assert np.array_equal(
        np.array(alone["embeddings"][0]), np.array(mixed.json()["embeddings"][-1])
    )
    (row,) = rows
    assert row["batch_invariant"] is False
    assert row["batches"] == row["items"]  # one input per run
    assert "quantizes activations dynamically" in dynamic_server.log()


def test_dynamically_quantized_model_serves_its_unpadded_output(
    dynamic_server: GatewayServer, dynamic_int8_dir: Path
) -> None:
    """On the default `auto` placement each text gets the graph's own output for that text
    alone, unpadded (ONNX Runtime fp32): padding to a shape bucket put the pad rows into the
    activation range (cos 0.990 under OpenVINO bf16)."""
    _, exact = encoder_for(dynamic_int8_dir, Runtime())  # ONNX Runtime fp32, no padding
    texts = [*TEXTS, "an unpadded text of eleven tokens, or so."]
    with dynamic_server.client() as client:
        answer = client.post("/api/embed", json={"model": "dyn", "input": texts}).json()
        (row,) = client.get("/admin/models").json()["models"]
    for text, served in zip(texts, answer["embeddings"], strict=True):
        (item,) = exact.prepare([text], EncodeOptions())
        reference = exact.finish(exact.run([item]), EncodeOptions())[0]
        vector = np.array(served)
        cosine = vector @ reference / np.linalg.norm(vector) / np.linalg.norm(reference)
        assert cosine >= 0.99999, (text, item.length, cosine, row["compute"])
    assert row["compute"]["bucketed"] is False, row["compute"]


def test_batched_model_is_invariant_to_its_company(server: GatewayServer) -> None:
    probe = "the same sentence, sent alone and with company"
    company = [f"companion text number {i} " * (1 + i % 9) for i in range(31)]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        alone = client.post("/api/embed", json={"model": "all-minilm", "input": probe}).json()
        mixed = client.post("/api/embed", json={"model": "all-minilm", "input": [*company, probe]})
    difference = np.abs(np.array(alone["embeddings"][0]) - np.array(mixed.json()["embeddings"][-1]))
    assert difference.max() <= 1e-5
