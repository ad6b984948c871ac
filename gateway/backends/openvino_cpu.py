"""OpenVINO on the CPU: the same ONNX graphs, bf16 (AMX) or fp32 compute.

Compiled models are cached by OpenVINO itself (CACHE_DIR) under the models dir's .cache, which
turns a compile into a load on the next start. OpenVINO names a cache entry by the graph's path,
its compile options and (as measured with 2026.4) the file's size, not its contents or mtime: a
file replaced by another of the same size was served from the old entry. So each graph gets a
cache folder of its own, keyed like the ONNX Runtime cache (path, size, mtime, versions), and a
load that computes non-finite numbers for a probe input (probe.py) drops that folder and
compiles once more before it gives up. A folder is named `<stem>-<owner>-<key>` (owner: the
graph's place and precision); a new compile drops the owner's older folders (a replaced file, a
new OpenVINO) and what earlier layouts left, so the cache holds one compile per graph.
Sequence inputs are padded to shape buckets (buckets.py): OpenVINO picks kernels by shape, and
bucketing is what keeps a text's vector independent of its batch-mates.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.backends.base import (
    Backend,
    BackendSession,
    GraphInfo,
    Placement,
    TensorInfo,
    file_cache_key,
    uses_dynamic_quantization,
)
from gateway.backends.buckets import pad_for, trim_outputs
from gateway.backends.probe import non_finite_outputs
from gateway.errors import ModelLoadError

log = logging.getLogger(__name__)
# A folder name of the per-graph layout before owners (`<stem>-<key>`), not `<stem>-<owner>-<key>`.
_SECOND_LAYOUT = re.compile(r"(?!.*-[0-9a-f]{8}-[0-9a-f]{16}$).+-[0-9a-f]{16}")

OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _tensor_info(port: Any) -> TensorInfo:
    shape = tuple(dim.get_length() if dim.is_static else None for dim in port.get_partial_shape())
    element = port.get_element_type().get_type_name()  # f32, i64, ...
    onnx_type = {"f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)"}
    return TensorInfo(port.get_any_name(), shape, onnx_type.get(element, f"tensor({element})"))


def drop_stale_compiles(folder: Path) -> None:
    """Before `folder` is first written: remove its owner's other folders (older files or
    OpenVINO versions), blobs of the first, flat layout and folders of the second
    (`<stem>-<key>`), none of which a load reads any more."""
    if not folder.parent.is_dir():
        return
    owner = folder.name.rsplit("-", 1)[0] + "-"
    for entry in folder.parent.iterdir():
        if entry.is_dir() and (
            entry.name.startswith(owner) or _SECOND_LAYOUT.fullmatch(entry.name)
        ):
            log.info("dropping a stale OpenVINO compile: %s", entry.name)
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_file() and entry.suffix == ".blob":
            entry.unlink(missing_ok=True)


class OpenVinoSession(BackendSession):
    """One compiled model and its infer request (runs happen on the device thread only)."""

    def __init__(self, compiled: Any, placement: Placement, path: Path) -> None:
        from openvino import Tensor  # the optional extra; compiled models come from it

        self.compiled = compiled
        self.placement = placement
        self.request = compiled.create_infer_request()
        self._lock = threading.Lock()  # one run at a time per request, whoever calls
        self._info = GraphInfo(
            inputs=tuple(_tensor_info(port) for port in compiled.inputs),
            outputs=tuple(_tensor_info(port) for port in compiled.outputs),
            dynamic_quantization=uses_dynamic_quantization(path),
        )
        self._ports = {
            info.name: port for info, port in zip(self._info.outputs, compiled.outputs, strict=True)
        }
        self._input_types = [
            (index, port.get_any_name(), port.get_element_type().to_dtype())
            for index, port in enumerate(compiled.inputs)
        ]
        self._bound: list[np.ndarray] = []
        self._tensor = Tensor

    def run(
        self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]
    ) -> list[np.ndarray]:
        names = list(output_names or self._info.output_names)
        feed, length, padded = pad_for(self.placement, feed)
        with self._lock:
            self._bind(feed)
            self.request.infer()
            # The request reuses its output buffers on the next run: copy out now.
            outputs = [
                np.array(self.request.get_tensor(self._ports[name]).data, copy=True)
                for name in names
            ]
        return trim_outputs(outputs, length, padded)

    def _bind(self, feed: dict[str, np.ndarray]) -> None:
        """Hand the request the batch's arrays as its input tensors, without a copy.

        `infer(feed)` goes through OpenVINO's Python data dispatcher, which cost ~75 us a run
        more (MiniLM bf16, one text: 1,354 against 1,278 us; 12 x 32 tokens 7,391 against
        7,302) for the same numbers. A shared tensor needs a C-contiguous, writeable array of
        the graph's type (np.require copies only what is not; unlike ascontiguousarray it
        keeps a scalar input 0-d). The arrays stay referenced until the next run, since the
        request's tensors point into them.
        """
        bound = []
        for index, name, dtype in self._input_types:
            array = np.require(feed[name], dtype=dtype, requirements=("C", "W"))
            self.request.set_input_tensor(index, self._tensor(array, shared_memory=True))
            bound.append(array)
        self._bound = bound

    def graph_info(self) -> GraphInfo:
        return self._info

    def get_providers(self) -> list[str]:
        return ["OpenVINO CPU"]

    def release_memory(self) -> None:
        """OpenVINO keeps intermediate buffers sized for the largest shape run (1.4 GiB after
        one MiniLM run of 64 x 256 tokens); release_memory frees them (35 MiB stayed)."""
        with self._lock:
            self.compiled.release_memory()
            self._bound = []


@dataclass(frozen=True)
class OpenVinoOptions:
    threads: int
    cache_dir: Path | None


class OpenVinoBackend(Backend):
    def __init__(self, options: OpenVinoOptions) -> None:
        import openvino

        self.ov = openvino
        self.options = options
        self.core = openvino.Core()

    def capabilities(self) -> list[str]:
        return list(self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))

    def config(self, precision: str) -> dict[str, Any]:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
            "INFERENCE_NUM_THREADS": self.options.threads,
            # One stream with every thread: one 2-thread run beat two 1-thread workers here.
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            # On graphs with int8 weights OpenVINO would otherwise quantize activations to
            # int8 on the fly (groups of 32): cos 0.9992 to fp32 on the bundled all-minilm.
            "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
        }
        return config

    def load(self, path: Path, placement: Placement) -> BackendSession:
        if placement.precision not in OV_PRECISION:
            raise ValueError(
                f"OpenVINO runs fp32, bf16 or fp16 here, not {placement.precision} "
                "(static int8 needs a calibrated graph, which this gateway does not build)"
            )
        cache = self.cache_folder(path, placement.precision)
        session = self._compile(path, placement, cache)
        broken = non_finite_outputs(session)
        if broken and cache is not None:
            log.warning(
                "%s: OpenVINO %s gave non-finite %s for a probe input; dropping its "
                "compiled-model cache and compiling again",
                path.name,
                placement.precision,
                ", ".join(broken),
            )
            shutil.rmtree(cache, ignore_errors=True)
            session = self._compile(path, placement, cache)
            broken = non_finite_outputs(session)
        if broken:
            raise ModelLoadError(
                f"OpenVINO {placement.precision} computes non-finite {', '.join(broken)} for "
                f"a probe input of {path.name}; run this model with precision fp32 or backend "
                "onnxruntime"
            )
        return session

    def cache_folder(self, path: Path, precision: str) -> Path | None:
        """This graph's own compiled-model cache (see the module's docstring), or None."""
        if self.options.cache_dir is None:
            return None
        owner = hashlib.sha256(f"{path.resolve()}|{precision}".encode()).hexdigest()[:8]
        key = file_cache_key(path, precision, self.ov.get_version())
        return self.options.cache_dir / f"{path.stem}-{owner}-{key}"

    def _compile(self, path: Path, placement: Placement, cache: Path | None) -> OpenVinoSession:
        config = self.config(placement.precision)
        if cache is not None:
            if not cache.is_dir():
                drop_stale_compiles(cache)
            cache.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(cache)
        # With CACHE_DIR set, compiling from the path lets OpenVINO skip the ONNX import
        # entirely when the compiled blob is cached.
        compiled = self.core.compile_model(str(path), "CPU", config)
        return OpenVinoSession(compiled, placement, path)

    def describe(self) -> dict[str, object]:
        return {
            "openvino": self.ov.get_version(),
            "cpu_capabilities": self.capabilities(),
            "compiled_model_cache": None
            if self.options.cache_dir is None
            else str(self.options.cache_dir),
        }
