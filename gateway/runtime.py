"""ONNX Runtime sessions: execution providers, threads, graph facts the encoders need."""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.errors import ModelLoadError

log = logging.getLogger(__name__)

# Ops whose activation scale is computed over the whole input tensor, i.e. over every row of a
# batch: a text's vector then depends on what it was batched with.
DYNAMIC_QUANT_OPS = (b"DynamicQuantizeLinear", b"DynamicQuantizeMatMul", b"DynamicQuantizeLSTM")
# Protobuf cannot serialize a graph past 2 GiB without external data; such models are not cached.
MAX_CACHED_GRAPH_BYTES = 1_800_000_000


def physical_cores() -> int:
    """Physical cores of this machine (logical CPUs when the topology cannot be read)."""
    cores: set[tuple[str, str]] = set()
    base = Path("/sys/devices/system/cpu")
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        allowed = set(range(os.cpu_count() or 1))
    for cpu in allowed:
        topology = base / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return len(allowed) or 1
        cores.add((package, core))
    return len(cores) or 1


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str | None, ...]
    type: str

    @property
    def is_float(self) -> bool:
        return "float" in self.type


@dataclass(frozen=True)
class GraphInfo:
    """What an encoder needs to know about a loaded graph."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    dynamic_quantization: bool

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


def uses_dynamic_quantization(path: Path) -> bool:
    """True when the graph quantizes activations dynamically.

    Op types are stored as plain strings in the ONNX protobuf, so scanning the bytes finds them
    without parsing (or depending on) the onnx package.
    """
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return any(data.find(op) != -1 for op in DYNAMIC_QUANT_OPS)


class ModelSession:
    """An ONNX Runtime session; on CUDA, runs go through IO binding.

    Exposes the InferenceSession calls encoders use (`run`, `get_inputs`, `get_outputs`).
    """

    def __init__(self, session: ort.InferenceSession, *, cuda: bool) -> None:
        self.session = session
        self.cuda = cuda and "CUDAExecutionProvider" in session.get_providers()

    def run(self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list:
        if not self.cuda:
            return self.session.run(output_names, feed)
        # Inputs are copied to the device once and outputs are left there until one copy back,
        # instead of the per-run staging a plain run() does.
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in output_names or [o.name for o in self.session.get_outputs()]:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def get_inputs(self) -> list:
        return self.session.get_inputs()

    def get_outputs(self) -> list:
        return self.session.get_outputs()

    def get_providers(self) -> list[str]:
        return self.session.get_providers()


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Runtime:
    """Creates sessions with the process-wide device, thread and cache settings.

    The graph optimized at the highest level is written to `cache_dir` on first load and loaded
    as is afterwards, which cuts a BERT-base load from ~1.8 s to ~0.5 s here. The cache key holds
    everything the optimized graph depends on: the file, the ORT version, providers and the CPU.
    """

    def __init__(
        self,
        *,
        device: str = "auto",
        threads: int = 0,
        cache_dir: Path | None = None,
        spin: bool = True,
    ) -> None:
        if device not in {"auto", "cpu", "cuda"}:
            raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
        self.device = device
        self.threads = threads or physical_cores()
        self.cache_dir = cache_dir
        self.spin = spin
        available = ort.get_available_providers()
        self.cuda_available = "CUDAExecutionProvider" in available
        if device == "cuda" and not self.cuda_available:
            log.warning(
                "GATEWAY_DEVICE=cuda but this onnxruntime has no CUDA provider (%s); "
                "install onnxruntime-gpu. Falling back to CPU.",
                ", ".join(available),
            )

    @property
    def wants_cuda(self) -> bool:
        return self.cuda_available and self.device in {"auto", "cuda"}

    def providers(self) -> list[str | tuple[str, dict[str, str]]]:
        if self.wants_cuda:
            cuda_options = {
                "arena_extend_strategy": "kSameAsRequested",
                "cudnn_conv_algo_search": "HEURISTIC",
                # TF32 would change fp32 matmul results; exactness beats a few percent.
                "use_tf32": "0",
            }
            return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def session_options(self, level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Shapes vary from batch to batch: memory patterns would only pin stale allocations.
        options.enable_mem_pattern = False
        # Spinning saves a thread wake-up per operator (~1.4 ms a run for a short text here).
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(self.spin)))
        options.log_severity_level = 3
        return options

    def optimized_path(self, path: Path) -> Path | None:
        if self.cache_dir is None:
            return None
        stat = path.stat()
        key = "|".join(
            [
                str(path.resolve()),
                str(stat.st_size),
                str(stat.st_mtime_ns),
                ort.__version__,
                repr(self.providers()),
                _cpu_model_name(),
            ]
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"{path.stem}-{digest}.onnx"

    def load(self, path: Path) -> tuple[ModelSession, GraphInfo]:
        try:
            session = self._create(path)
        except Exception as exc:  # ORT raises several unrelated types for a bad file
            raise ModelLoadError(f"cannot load {path.name}: {exc}") from None
        if self.wants_cuda and "CUDAExecutionProvider" not in session.get_providers():
            log.warning("%s: the CUDA provider did not start; running on CPU", path.name)
        info = GraphInfo(
            inputs=tuple(TensorInfo(t.name, tuple(t.shape), t.type) for t in session.get_inputs()),
            outputs=tuple(
                TensorInfo(t.name, tuple(t.shape), t.type) for t in session.get_outputs()
            ),
            dynamic_quantization=uses_dynamic_quantization(path),
        )
        return ModelSession(session, cuda=self.wants_cuda), info

    def _create(self, path: Path) -> ort.InferenceSession:
        providers = self.providers()
        cached = self.optimized_path(path)
        if cached is not None and cached.is_file():
            try:
                options = self.session_options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
                return ort.InferenceSession(str(cached), options, providers=providers)
            except Exception as exc:  # a stale or damaged cache entry: rebuild it
                log.warning("ignoring cached optimized graph %s: %s", cached.name, exc)
                cached.unlink(missing_ok=True)
        options = self.session_options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        if cached is None or path.stat().st_size > MAX_CACHED_GRAPH_BYTES:
            return ort.InferenceSession(str(path), options, providers=providers)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.stem}.{os.getpid()}.partial.onnx")
        options.optimized_model_filepath = str(partial)
        session = ort.InferenceSession(str(path), options, providers=providers)
        if partial.is_file():
            os.replace(partial, cached)
        return session

    def describe(self) -> dict[str, Any]:
        """device, threads, onnxruntime (version), providers, optimized_graph_cache."""
        return {
            "device": "cuda" if self.wants_cuda else "cpu",
            "threads": self.threads,
            "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(),
            "optimized_graph_cache": None if self.cache_dir is None else str(self.cache_dir),
        }
