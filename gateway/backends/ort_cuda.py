"""ONNX Runtime on an NVIDIA GPU: CUDA execution provider, IO binding, fp16 graphs.

fp16 graphs are converted once with onnxruntime's own float16 tool (it ships with the
onnxruntime and onnxruntime-gpu wheels and needs the `onnx` package), keeping fp32 inputs and
outputs so encoders see the same arrays, and cached next to the optimized fp32 graphs. A graph
the tool cannot convert runs in fp32, and the placement says so; so does an fp16 graph that
computes non-finite numbers for the load-time probe (probe.py: fp16 overflows to inf/NaN where
fp32 does not). A session that ONNX Runtime did not put on the CUDA provider (no CUDA provider
in this onnxruntime, or one that failed to start: cuDNN missing, no device) runs on the CPU, and
its placement says device cpu and why, so /admin/models and /api/ps never report a GPU that is
not used.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gateway.backends.base import (
    BackendSession,
    GraphInfo,
    Placement,
    cache_file,
    drop_stale_cache_files,
)
from gateway.backends.buckets import pad_for, trim_outputs
from gateway.backends.ort_cpu import OrtCpuBackend, ProviderList, ort_graph_info
from gateway.backends.probe import non_finite_outputs
from gateway.errors import ModelLoadError

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CUDA_OPTIONS = {
    "arena_extend_strategy": "kSameAsRequested",
    "cudnn_conv_algo_search": "HEURISTIC",
    # TF32 would change fp32 matmul results; exactness beats a few percent.
    "use_tf32": "0",
}


def cuda_available() -> bool:
    if CUDA_PROVIDER not in ort.get_available_providers():
        return False
    _preload_cuda_libraries()
    return True


@functools.cache
def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* wheels the `gpu` extra installs (onnxruntime-gpu
    1.21+); without them the provider looks for a system CUDA, as before."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # a system CUDA may still serve
            log.info("onnxruntime.preload_dlls() failed (%s); using the system CUDA", exc)


class CudaSession(BackendSession):
    """Runs through IO binding: inputs copied to the device once, outputs left there until one
    copy back, instead of the per-run staging a plain run() does. On a CPU-only onnxruntime
    (the dry run) it runs plainly."""

    def __init__(self, session: ort.InferenceSession, placement: Placement, path: Path) -> None:
        self.session = session
        self.placement = placement
        # Where ONNX Runtime really put it: the CUDA provider first, or it runs on the CPU.
        self.on_gpu = session.get_providers()[:1] == [CUDA_PROVIDER]
        self._info = ort_graph_info(session, path)

    def run(
        self, output_names: Sequence[str] | None, feed: dict[str, np.ndarray]
    ) -> list[np.ndarray]:
        names = list(output_names or self._info.output_names)
        # GPU kernels are chosen by shape too: one padded length per bucket (buckets.py).
        feed, length, padded = pad_for(self.placement, feed)
        if not self.on_gpu:
            return trim_outputs(self.session.run(names, feed), length, padded)
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        outputs = binding.copy_outputs_to_cpu()
        # fp16 graphs keep fp32 outputs, but a pooled output cast inside the graph may not.
        outputs = [np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o for o in outputs]
        return trim_outputs(outputs, length, padded)

    def graph_info(self) -> GraphInfo:
        return self._info

    def get_providers(self) -> list[str]:
        return list(self.session.get_providers())


def convert_to_fp16(source: Path, target: Path) -> None:
    """Write an fp16 copy of `source` (fp32 inputs/outputs kept) to `target`, atomically."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    converted = convert_float_to_float16(model, keep_io_types=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.stem}.{os.getpid()}.partial.onnx")
    onnx.save(converted, str(partial))
    os.replace(partial, target)


class OrtCudaBackend(OrtCpuBackend):
    """Sessions on the CUDA provider (CPU as the fallback for ops CUDA lacks)."""

    def providers(self) -> ProviderList:
        if not cuda_available():
            return ["CPUExecutionProvider"]  # dry run on a CPU-only onnxruntime
        return [(CUDA_PROVIDER, dict(CUDA_OPTIONS)), "CPUExecutionProvider"]

    def fp16_path(self, path: Path) -> Path:
        folder = self.options.cache_dir or path.parent / ".fp16"
        return cache_file(folder, path, "fp16", versions=[ort.__version__])

    def graph_for(self, path: Path, placement: Placement) -> tuple[Path, Placement]:
        """The file to load for `placement`: an fp16 conversion, or the original graph."""
        if placement.precision != "fp16":
            return path, placement
        target = self.fp16_path(path)
        if target.is_file():
            return target, placement
        drop_stale_cache_files(target, first_layout=f"{path.stem}-fp16-")
        try:
            convert_to_fp16(path, target)
        except Exception as exc:  # an op the tool cannot convert, or onnx missing
            log.warning("%s: no fp16 graph (%s); running fp32", path.name, exc)
            reason = f"{placement.reason}; fp16 conversion failed ({exc}), so fp32"
            return path, replace(placement, precision="fp32", reason=reason)
        return target, placement

    def load(self, path: Path, placement: Placement) -> BackendSession:
        graph, placement = self.graph_for(path, placement)
        session = self._session(graph, placement, path)
        broken = non_finite_outputs(session)
        if broken and graph != path:  # the fp16 conversion overflows: the fp32 graph instead
            log.warning(
                "%s: the fp16 graph computes non-finite %s for a probe input; running fp32",
                path.name,
                ", ".join(broken),
            )
            reason = (
                f"{placement.reason}; fp16 gave non-finite {', '.join(broken)} for a probe "
                "input, so fp32"
            )
            session = self._session(path, replace(placement, precision="fp32", reason=reason), path)
            broken = non_finite_outputs(session)
        if broken:
            raise ModelLoadError(
                f"ONNX Runtime ({session.placement.device}, {session.placement.precision}) "
                f"computes non-finite {', '.join(broken)} for a probe input of {path.name}"
            )
        return session

    def _session(self, graph: Path, placement: Placement, path: Path) -> CudaSession:
        """A session of `graph`, its placement saying where ONNX Runtime really runs it."""
        created = self.create(graph)
        providers = list(created.get_providers())
        if providers[:1] != [CUDA_PROVIDER]:
            if cuda_available():
                why = f"the CUDA provider did not start (session providers: {providers})"
                log.warning("%s: %s; running on the CPU", path.name, why)
            else:  # a dry run (Runtime(assume_cuda=True)) on a CPU-only onnxruntime
                why = "this onnxruntime has no CUDA provider (a dry run)"
                log.info("%s: %s; the CUDA path's graph runs on the CPU", path.name, why)
            placement = replace(placement, device="cpu", reason=f"{placement.reason}; but {why}")
        return CudaSession(created, placement, path)
