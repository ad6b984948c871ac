"""The CUDA backend says where ONNX Runtime really runs a graph, and refuses non-finite fp16.

No GPU here: a fake InferenceSession stands in, with the providers ONNX Runtime would report
(the CUDA provider first when it started; CPU only when it fell back: cuDNN missing, no device).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gateway import loaded
from gateway.backends import ort_cuda
from gateway.backends.base import Placement
from gateway.backends.ort_cpu import OrtOptions
from gateway.backends.ort_cuda import CUDA_PROVIDER, OrtCudaBackend
from gateway.errors import ModelLoadError
from gateway.settings import Settings

CPU = "CPUExecutionProvider"
CUDA_FP16 = Placement("onnxruntime", "cuda", "fp16", "auto on CUDA", bucketed=True)


@dataclass
class Arg:
    name: str
    shape: list[Any]
    type: str


class FakeOrt:
    """An InferenceSession: one token input, one hidden-state output (NaN when `broken`)."""

    def __init__(self, providers: list[str], broken: bool = False) -> None:
        self.providers, self.broken = providers, broken

    def get_providers(self) -> list[str]:
        return self.providers

    def get_inputs(self) -> list[Arg]:
        return [Arg("input_ids", ["batch", "tokens"], "tensor(int64)")]

    def get_outputs(self) -> list[Arg]:
        return [Arg("last_hidden_state", ["batch", "tokens", 4], "tensor(float)")]

    def _out(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        ids = feed["input_ids"]
        return [np.full((*ids.shape, 4), np.nan if self.broken else 0.5, dtype=np.float32)]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._out(feed)

    def io_binding(self) -> Any:
        session = self

        class Binding:
            feed: dict[str, np.ndarray] = {}

            def bind_cpu_input(self, name: str, array: np.ndarray) -> None:
                self.feed[name] = array

            def bind_output(self, name: str, device: str) -> None:
                pass

            def copy_outputs_to_cpu(self) -> list[np.ndarray]:
                return session._out(self.feed)

        return Binding()

    def run_with_iobinding(self, binding: Any) -> None:
        pass


def _backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made: dict[str, FakeOrt], listed: bool
) -> tuple[OrtCudaBackend, Path]:
    """A backend whose sessions are `made[graph file name]`; `listed`: whether this onnxruntime
    lists the CUDA provider at all."""
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"not a real graph")
    monkeypatch.setattr(ort_cuda, "cuda_available", lambda: listed)
    backend = OrtCudaBackend(OrtOptions(threads=1, spin=False, cache_dir=tmp_path / "cache"))
    monkeypatch.setattr(backend, "create", lambda path: made[Path(path).name])
    return backend, graph


def _no_fp16(monkeypatch: pytest.MonkeyPatch, backend: OrtCudaBackend) -> None:
    monkeypatch.setattr(backend, "graph_for", lambda path, placement: (path, placement))


def _fp16_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fp32_broken: bool
) -> tuple[OrtCudaBackend, Path]:
    """A CUDA backend whose fp16 conversion computes inf/NaN (and the fp32 graph too, if
    `fp32_broken`)."""
    made = {
        "model-fp16.onnx": FakeOrt([CUDA_PROVIDER], broken=True),
        "model.onnx": FakeOrt([CUDA_PROVIDER], broken=fp32_broken),
    }
    backend, graph = _backend(tmp_path, monkeypatch, made, listed=True)
    fp16 = tmp_path / "model-fp16.onnx"
    fp16.write_bytes(b"fp16")
    monkeypatch.setattr(backend, "graph_for", lambda path, placement: (fp16, placement))
    return backend, graph


def test_a_session_on_the_cuda_provider_keeps_its_cuda_placement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = {"model.onnx": FakeOrt([CUDA_PROVIDER, CPU])}
    backend, graph = _backend(tmp_path, monkeypatch, made, listed=True)
    _no_fp16(monkeypatch, backend)
    session = backend.load(graph, CUDA_FP16)
    assert session.placement.device == "cuda" and session.placement.reason == "auto on CUDA"


@pytest.mark.parametrize("providers", [[CPU], [CPU, CUDA_PROVIDER]])
def test_a_cuda_provider_that_did_not_start_is_reported_as_the_cpu(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    providers: list[str],
) -> None:
    """onnxruntime-gpu lists the CUDA provider, but the session fell back to the CPU (or put
    the CPU first): the placement says device cpu and why, and a warning is logged."""
    made = {"model.onnx": FakeOrt(providers)}
    backend, graph = _backend(tmp_path, monkeypatch, made, listed=True)
    _no_fp16(monkeypatch, backend)
    with caplog.at_level(logging.WARNING, logger="gateway.backends.ort_cuda"):
        session = backend.load(graph, CUDA_FP16)
    assert session.placement.device == "cpu"
    assert "the CUDA provider did not start" in session.placement.reason
    assert session.describe()["device"] == "cpu"
    assert "did not start" in caplog.text


def test_a_dry_run_without_a_cuda_provider_says_the_cpu_ran_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = {"model.onnx": FakeOrt([CPU])}
    backend, graph = _backend(tmp_path, monkeypatch, made, listed=False)
    _no_fp16(monkeypatch, backend)
    placement = backend.load(graph, CUDA_FP16).placement
    assert (placement.device, placement.precision) == ("cpu", "fp16")
    assert "no CUDA provider" in placement.reason


def test_an_fp16_graph_with_non_finite_outputs_falls_back_to_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, graph = _fp16_backend(tmp_path, monkeypatch, fp32_broken=False)
    placement = backend.load(graph, CUDA_FP16).placement
    assert (placement.device, placement.precision) == ("cuda", "fp32")
    assert "non-finite last_hidden_state" in placement.reason


def test_a_graph_non_finite_in_fp32_too_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, graph = _fp16_backend(tmp_path, monkeypatch, fp32_broken=True)
    with pytest.raises(ModelLoadError, match="non-finite last_hidden_state"):
        backend.load(graph, CUDA_FP16)


class FakeEncoder:
    batch_invariant = True
    one_row_inputs: tuple[str, ...] = ()

    def __init__(self, placement: Placement) -> None:
        self.session = SimpleNamespace(placement=placement)
        self.spec = SimpleNamespace(name="m")


def test_a_model_that_fell_back_counts_as_a_cpu_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager wants CUDA, the session runs on the CPU: the loaded model's device (what
    /api/ps's size_vram and the budgets read) is cpu, and NVML is not asked for its size."""
    fell_back = Placement("onnxruntime", "cpu", "fp16", "auto on CUDA; but ...", bucketed=True)
    monkeypatch.setattr(loaded, "build_encoder", lambda *a: FakeEncoder(fell_back))
    monkeypatch.setattr(loaded, "run_overhead_at_load", lambda *a, **k: None)
    monkeypatch.setattr(loaded, "cache_identity", lambda *a: "id")

    def no_probe(*args: object) -> None:
        raise AssertionError("VRAM probe for a model on the CPU")

    monkeypatch.setattr(loaded, "probe_vram_per_token", no_probe)
    nvml = SimpleNamespace(memory=lambda: SimpleNamespace(total=1, used=1, used_by_this_process=1))
    store = SimpleNamespace(paths=lambda spec: {}, digest=lambda spec: "sha")
    spec = SimpleNamespace(
        name="m", max_batch_size=None, max_batch_tokens=None, run_overhead_tokens=None
    )
    with ThreadPoolExecutor(1) as executor:
        model = asyncio.run(
            loaded.load_model(
                spec,  # type: ignore[arg-type]
                store,  # type: ignore[arg-type]
                SimpleNamespace(wants_cuda=True),  # type: ignore[arg-type]
                nvml,  # type: ignore[arg-type]
                executor,
                Settings.load({}),
                keep_alive=60.0,
            )
        )
    assert model.device == "cpu" and model.compute["device"] == "cpu"
