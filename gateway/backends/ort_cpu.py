"""ONNX Runtime on the CPU: fp32 compute, optimized graphs cached on disk."""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gateway.backends.base import (
    Backend,
    BackendSession,
    GraphInfo,
    Placement,
    TensorInfo,
    cache_file,
    drop_stale_cache_files,
    external_data_files,
    uses_dynamic_quantization,
)
from gateway.backends.probe import probe_feed

log = logging.getLogger(__name__)

# Protobuf cannot serialize a graph past 2 GiB without external data; such models are not cached.
MAX_CACHED_GRAPH_BYTES = 1_800_000_000
ProviderList = list[str | tuple[str, dict[str, str]]]


def graph_bytes(path: Path) -> int:
    """The graph's size with its weights: the file and an external-data file beside it."""
    return path.stat().st_size + sum(data.stat().st_size for data in external_data_files(path))


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ort_graph_info(session: ort.InferenceSession, path: Path) -> GraphInfo:
    return GraphInfo(
        inputs=tuple(TensorInfo(t.name, tuple(t.shape), t.type) for t in session.get_inputs()),
        outputs=tuple(TensorInfo(t.name, tuple(t.shape), t.type) for t in session.get_outputs()),
        dynamic_quantization=uses_dynamic_quantization(path),
    )


class OrtSession(BackendSession):
    """An InferenceSession run as is (CPU)."""

    def __init__(self, session: ort.InferenceSession, placement: Placement, path: Path) -> None:
        self.session = session
        self.placement = placement
        self._info = ort_graph_info(session, path)

    def run(
        self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]
    ) -> list[np.ndarray]:
        return list(self.session.run(list(output_names) if output_names else None, feed))

    def graph_info(self) -> GraphInfo:
        return self._info

    def get_providers(self) -> list[str]:
        return list(self.session.get_providers())

    def release_memory(self) -> None:
        """The CPU arena keeps its largest size (1.6 GiB after one MiniLM run of 64 x 256
        tokens) and ONNX Runtime shrinks it only at the end of a run that asks: the smallest
        run does that, freeing every chunk no run holds."""
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        try:
            self.session.run(None, probe_feed(self._info.inputs), options)
        except Exception as exc:  # a graph the probe cannot feed: the arena stays as it is
            log.warning("could not shrink the CPU arena: %s", exc)


@dataclass(frozen=True)
class OrtOptions:
    threads: int
    spin: bool
    cache_dir: Path | None


class OrtCpuBackend(Backend):
    """Creates sessions; the graph optimized at the highest level is written to the cache on
    first load and loaded as is afterwards (a BERT-base load: ~1.8 s -> ~0.5 s here). The cache
    key holds everything the optimized graph depends on: file, ORT version, providers, CPU; a
    new entry replaces the file's older ones (`drop_stale_cache_files`)."""

    def __init__(self, options: OrtOptions) -> None:
        self.options = options

    def providers(self) -> ProviderList:
        return ["CPUExecutionProvider"]

    def session_options(self, level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.options.threads
        options.inter_op_num_threads = 1
        # Shapes vary from batch to batch: memory patterns would only pin stale allocations.
        options.enable_mem_pattern = False
        # Spinning saves a thread wake-up per operator (~1.4 ms a run for a short text here).
        spin = str(int(self.options.spin))
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.log_severity_level = 3
        return options

    def optimized_path(self, path: Path) -> Path | None:
        if self.options.cache_dir is None:
            return None
        return cache_file(
            self.options.cache_dir,
            path,
            "opt",
            versions=[ort.__version__],
            beside=[repr(self.providers()), cpu_model_name()],
        )

    def load(self, path: Path, placement: Placement) -> BackendSession:
        return OrtSession(self.create(path), placement, path)

    def create(self, path: Path) -> ort.InferenceSession:
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
        if cached is None or graph_bytes(path) > MAX_CACHED_GRAPH_BYTES:
            return ort.InferenceSession(str(path), options, providers=providers)
        drop_stale_cache_files(cached, first_layout=f"{path.stem}-")
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.stem}.{os.getpid()}.partial.onnx")
        options.optimized_model_filepath = str(partial)
        session = ort.InferenceSession(str(path), options, providers=providers)
        if partial.is_file():
            os.replace(partial, cached)
        return session

    def describe(self) -> dict[str, object]:
        return {
            "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(),
            "optimized_graph_cache": None
            if self.options.cache_dir is None
            else str(self.options.cache_dir),
        }
