"""The process-wide compute settings, and the one place graphs are loaded.

`Runtime.load(path)` returns a backend session (ONNX Runtime CPU or CUDA, or OpenVINO: see
gateway/backends/) and the graph's facts; encoders call it exactly as they called ONNX Runtime.
`for_model(spec)` applies a model's own `backend`/`precision` from registry.yaml.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort

from gateway.backends import Backend, BackendSession, GraphInfo, Placement, TensorInfo
from gateway.backends.base import BACKEND_CHOICES, check_precision, uses_dynamic_quantization
from gateway.backends.ort_cpu import OrtCpuBackend, OrtOptions
from gateway.backends.ort_cuda import OrtCudaBackend, cuda_available
from gateway.backends.selection import PlacementError, cpu_flags, place
from gateway.concurrency import allowed_cpus
from gateway.errors import ModelLoadError
from gateway.redact import runtime_cause

log = logging.getLogger(__name__)

__all__ = [
    "GraphInfo",
    "Runtime",
    "TensorInfo",
    "physical_cores",
    "uses_dynamic_quantization",
]


def physical_cores() -> int:
    """Physical cores of this machine (logical CPUs when the topology cannot be read)."""
    cores: set[tuple[str, str]] = set()
    base = Path("/sys/devices/system/cpu")
    allowed = allowed_cpus()
    for cpu in allowed:
        topology = base / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return len(allowed) or 1
        cores.add((package, core))
    return len(cores) or 1


class Runtime:
    """Device, threads, caches, and the default backend/precision for every model.

    Built programmatically, a Runtime is the exact mode (ONNX Runtime fp32); the server's
    settings default to `auto` (see gateway/backends/selection.py).
    """

    def __init__(
        self,
        *,
        device: str = "auto",
        threads: int = 0,
        cache_dir: Path | None = None,
        spin: bool = True,
        backend: str = "onnxruntime",
        precision: str = "fp32",
        assume_cuda: bool = False,
    ) -> None:
        if device not in {"auto", "cpu", "cuda"}:
            raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
        if backend not in BACKEND_CHOICES:
            raise ValueError(f"backend must be one of {', '.join(BACKEND_CHOICES)}")
        try:
            check_precision(precision)
        except ValueError as exc:
            raise ValueError(f"precision: {exc}") from None
        self.device = device
        self.threads = threads or physical_cores()
        self.cache_dir = cache_dir
        self.spin = spin
        self.backend = backend
        self.precision = precision
        self.kind: str | None = None  # the model kind, once for_model binds one
        # assume_cuda: a dry run of the CUDA path on a CPU-only onnxruntime (bench/gpu_check.py):
        # CUDA placements and fp16 graphs are used, and the sessions run on the CPU.
        self.cuda_available = cuda_available() or assume_cuda
        self._backends: dict[str, Backend] = {}  # shared by the copies for_model makes
        if device == "cuda" and not self.cuda_available:
            log.warning(
                "GATEWAY_DEVICE=cuda but this onnxruntime has no CUDA provider (%s); "
                "install onnxruntime-gpu. Falling back to CPU.",
                ", ".join(ort.get_available_providers()),
            )

    @property
    def wants_cuda(self) -> bool:
        return self.cuda_available and self.device in {"auto", "cuda"}

    def for_model(self, spec: Any) -> Runtime:
        """This runtime with the model's own backend/precision, where registry.yaml sets them."""
        backend = getattr(spec, "backend", None) or self.backend
        precision = getattr(spec, "precision", None) or self.precision
        bound = copy.copy(self)
        bound.backend, bound.precision = backend, precision
        bound.kind = getattr(spec, "kind", None)
        return bound

    def placement(self, *, dynamic_quantization: bool = False) -> Placement:
        return place(
            self.backend,
            self.precision,
            cuda=self.wants_cuda,
            flags=cpu_flags(),
            kind=self.kind,
            dynamic_quantization=dynamic_quantization,
        )

    def backend_for(self, placement: Placement) -> Backend:
        key = f"{placement.backend}:{placement.device}"
        if key not in self._backends:
            self._backends[key] = self._make_backend(placement)
        return self._backends[key]

    def _make_backend(self, placement: Placement) -> Backend:
        if placement.backend == "openvino":
            from gateway.backends.openvino_cpu import OpenVinoBackend, OpenVinoOptions

            ov_cache = None if self.cache_dir is None else self.cache_dir.parent / "openvino"
            return OpenVinoBackend(OpenVinoOptions(self.threads, ov_cache))
        options = OrtOptions(self.threads, self.spin, self.cache_dir)
        return OrtCudaBackend(options) if placement.device == "cuda" else OrtCpuBackend(options)

    def load(self, path: Path) -> tuple[BackendSession, GraphInfo]:
        try:
            dynamic = uses_dynamic_quantization(path)  # placed differently (selection.py)
        except (OSError, ValueError):  # unreadable or empty: the load below says so
            dynamic = False
        try:
            placement = self.placement(dynamic_quantization=dynamic)
        except PlacementError as exc:
            raise ModelLoadError(f"cannot load {path.name}: {exc}") from None
        try:
            session = self.backend_for(placement).load(path, placement)
            graph = session.graph_info()  # reads the file again (dynamic quantization scan)
        except OSError as exc:  # deleted or unreadable, possibly while loading
            raise ModelLoadError(f"cannot read {path.name}: {exc.strerror}") from None
        except ModelLoadError:  # the backend's own words (a probe's finding) already say it
            raise
        except Exception as exc:  # backends raise several unrelated types for a bad file
            log.warning("cannot load %s: %s", path, exc)
            raise ModelLoadError(f"cannot load {path.name}: {runtime_cause(exc)}") from None
        chosen = session.placement
        log.info(
            "%s: %s %s on %s (%s)",
            path.name,
            chosen.backend,
            chosen.precision,
            chosen.device,
            chosen.reason,
        )
        return session, graph

    # ONNX Runtime settings, for callers that build sessions of their own (the bench).
    def session_options(self, level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
        return OrtCpuBackend(OrtOptions(self.threads, self.spin, None)).session_options(level)

    def describe(self) -> dict[str, Any]:
        """device, threads, backend, precision, onnxruntime (version), providers,
        optimized_graph_cache, default_placement."""
        info: dict[str, Any] = {
            "device": "cuda" if self.wants_cuda else "cpu",
            "threads": self.threads,
            "backend": self.backend,
            "precision": self.precision,
            "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(),
            "optimized_graph_cache": None if self.cache_dir is None else str(self.cache_dir),
        }
        try:
            info["default_placement"] = self.placement().describe()
        except PlacementError as exc:
            info["default_placement"] = {"error": str(exc)}
        return info


def log_compute_choice(runtime: Runtime) -> None:
    """At start-up: what models will run on, and why (each load logs its own choice too)."""
    try:
        chosen = runtime.placement()
    except PlacementError as exc:
        log.warning(
            "compute: backend %s, precision %s: %s", runtime.backend, runtime.precision, exc
        )
        return
    log.info(
        "compute: %s %s on %s (%s)", chosen.backend, chosen.precision, chosen.device, chosen.reason
    )
