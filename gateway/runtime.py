"""ONNX Runtime sessions: execution providers, threads, graph facts the encoders need."""

from __future__ import annotations

import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from gateway.errors import ModelLoadError

log = logging.getLogger(__name__)

# Ops whose activation scale is computed over the whole input tensor, i.e. over every row of a
# batch: a text's vector then depends on what it was batched with.
DYNAMIC_QUANT_OPS = (b"DynamicQuantizeLinear", b"DynamicQuantizeMatMul", b"DynamicQuantizeLSTM")


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


class Runtime:
    """Creates sessions with the process-wide device and thread settings."""

    def __init__(self, *, device: str = "auto", threads: int = 0) -> None:
        if device not in {"auto", "cpu", "cuda"}:
            raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
        self.device = device
        self.threads = threads or physical_cores()
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

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Shapes vary from batch to batch: memory patterns would only pin stale allocations.
        options.enable_mem_pattern = False
        # Idle worker threads must not spin while the other core tokenizes the next batch.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return options

    def load(self, path: Path) -> tuple[ort.InferenceSession, GraphInfo]:
        try:
            session = ort.InferenceSession(
                str(path), sess_options=self.session_options(), providers=self.providers()
            )
        except Exception as exc:  # ORT raises several unrelated types for a bad file
            raise ModelLoadError(f"cannot load {path.name}: {exc}") from None
        active = session.get_providers()
        if self.wants_cuda and "CUDAExecutionProvider" not in active:
            log.warning("%s: CUDA provider did not start; running on CPU", path.name)
        info = GraphInfo(
            inputs=tuple(TensorInfo(t.name, tuple(t.shape), t.type) for t in session.get_inputs()),
            outputs=tuple(
                TensorInfo(t.name, tuple(t.shape), t.type) for t in session.get_outputs()
            ),
            dynamic_quantization=uses_dynamic_quantization(path),
        )
        return session, info

    def describe(self) -> dict[str, object]:
        return {
            "device": "cuda" if self.wants_cuda else "cpu",
            "threads": self.threads,
            "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(),
        }
