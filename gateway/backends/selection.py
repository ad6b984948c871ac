"""Which backend and precision a model runs with, and why: the `auto` rules.

- CUDA (onnxruntime-gpu with a GPU): ONNX Runtime's CUDA provider, fp16 where the graph
  converts (tensor cores; fp32 accumulation), fp32 on request.
- A CPU with AMX-BF16 or AVX512-BF16 and OpenVINO installed: OpenVINO bf16 (3.1x
  sentence-transformers on short sentences, cos 0.99998 to fp32, measured on
  the 2-core Sapphire Rapids machines `make bench` runs on).
- Any other CPU with OpenVINO: OpenVINO fp32 (2.1x ONNX Runtime on the bundled int8-weight graph,
  same machines). Without OpenVINO: ONNX Runtime fp32.
- `precision: fp32` with `backend: auto` means the exact mode: ONNX Runtime fp32, whose results
  are bit-identical whatever the batch.
- Cross-encoders on `auto` stay fp32 (OpenVINO): in bf16 the test reranker's scores moved by
  2.1e-2, over the 1e-2 the gateway allows; embeddings of every kind stayed at cos >= 0.9994.
OpenVINO placements are bucketed (buckets.py), which keeps them batch-invariant.
- Graphs that quantize activations dynamically run one input at a time, unpadded (see
  `_for_dynamic_quantization`); on a CPU `auto` runs them in the exact mode.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gateway.backends.base import INT8_REFUSED, Placement
from gateway.backends.openvino_cpu import openvino_installed

BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}
# bf16 on AMX costs the same between multiples of 16 tokens (buckets.py): coarser buckets.
AMX_BUCKET_STEP = 16
# Kinds whose outputs bf16 moves past the gateway's bounds (bench/fast_path_numerics.py).
BF16_AUTO_EXCLUDED = {"cross-encoder": "bf16 moved reranker scores by 2.1e-2 (bound 1e-2)"}


class PlacementError(ValueError):
    """A backend/precision combination this machine or build cannot run."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        with cpuinfo.open() as lines:
            for line in lines:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def bf16_support(flags: frozenset[str]) -> str | None:
    """The CPU feature that makes bf16 fast here, or None."""
    found = [name for flag, name in BF16_FLAGS.items() if flag in flags]
    return " and ".join(found) or None


def place(
    backend: str,
    precision: str,
    *,
    cuda: bool,
    flags: frozenset[str],
    openvino: bool | None = None,
    kind: str | None = None,
    dynamic_quantization: bool = False,
) -> Placement:
    """Resolve `auto` and check the combination; raises PlacementError with the reason.
    `dynamic_quantization`: the graph computes activation scales at run time."""
    chosen = _place(backend, precision, cuda=cuda, flags=flags, openvino=openvino, kind=kind)
    if dynamic_quantization:
        return _for_dynamic_quantization(chosen, backend, precision)
    return chosen


def _place(
    backend: str,
    precision: str,
    *,
    cuda: bool,
    flags: frozenset[str],
    openvino: bool | None,
    kind: str | None,
) -> Placement:
    openvino = openvino_installed() if openvino is None else openvino
    if precision == "int8":  # refused where it is set (settings, registry); a caller's slip
        raise PlacementError(INT8_REFUSED)
    if backend == "openvino" and not openvino:
        raise PlacementError("backend openvino: the package is missing (pip install '.[openvino]')")
    if cuda and backend != "openvino":
        return _place_cuda(precision)
    chosen = _place_cpu(backend, precision, flags, openvino, cuda)
    if precision == "auto" and chosen.precision == "bf16" and kind in BF16_AUTO_EXCLUDED:
        why = f"auto: {kind}: {BF16_AUTO_EXCLUDED[kind]}, so OpenVINO fp32"
        return Placement("openvino", "cpu", "fp32", why, bucketed=True)
    return chosen


def _for_dynamic_quantization(chosen: Placement, backend: str, precision: str) -> Placement:
    """Such a graph takes its activation scale from the min/max of the whole input tensor, so
    it runs one input at a time (batching.py), and must not be padded either: pad rows enter
    that min/max (cos 0.990 to the unpadded output on the test's dynamic-int8 MiniLM). Alone,
    a text has one shape anyway, so buckets buy nothing. On a CPU, `auto` also leaves
    OpenVINO: its bf16 moved the same model to cos 0.992 even unpadded (fp32: 0.998 on a
    74-token text), while ONNX Runtime fp32 runs the graph's own integer kernels."""
    if backend == "auto" and precision == "auto" and chosen.device == "cpu":
        why = (
            "auto: the graph quantizes activations dynamically: ONNX Runtime fp32, one "
            "unpadded input per run (OpenVINO moved its vectors)"
        )
        return Placement("onnxruntime", "cpu", "fp32", why)
    if not chosen.bucketed:
        return chosen
    why = f"{chosen.reason}; unpadded: the graph quantizes activations dynamically"
    return replace(chosen, bucketed=False, reason=why)


def _place_cuda(precision: str) -> Placement:
    if precision in ("auto", "fp16"):
        why = "auto on CUDA" if precision == "auto" else "fp16 requested"
        return Placement(
            "onnxruntime", "cuda", "fp16", f"{why}: fp16 graph on the CUDA provider", bucketed=True
        )
    if precision == "fp32":
        return Placement("onnxruntime", "cuda", "fp32", "fp32 requested on CUDA", bucketed=True)
    raise PlacementError(f"precision {precision} is not offered on CUDA (fp16 or fp32)")


def _place_cpu(
    backend: str, precision: str, flags: frozenset[str], openvino: bool, cuda: bool
) -> Placement:
    bf16 = bf16_support(flags)
    on_cpu = " (on the CPU: OpenVINO's GPU plugin is for Intel GPUs)" if cuda else ""
    if precision == "fp16":
        raise PlacementError("fp16 is offered on CUDA only; on a CPU use bf16 or fp32")
    if backend == "onnxruntime" or (backend == "auto" and precision == "fp32") or not openvino:
        if precision == "bf16":
            raise PlacementError("bf16 needs backend openvino (ONNX Runtime CPU kernels: fp32)")
        if backend == "onnxruntime":
            why = "backend onnxruntime requested"
        elif precision == "fp32":
            why = "fp32 requested: ONNX Runtime, the exact mode (bit-identical in any batch)"
        else:
            why = "auto: OpenVINO is not installed (pip install '.[openvino]')"
        return Placement("onnxruntime", "cpu", "fp32", why)
    step = AMX_BUCKET_STEP if "amx_bf16" in flags else 8
    if precision == "bf16":
        note = f"CPU has {bf16}" if bf16 else "this CPU has no AMX/AVX512-BF16: bf16 is emulated"
        why = f"bf16 requested, {note}"
        return Placement("openvino", "cpu", "bf16", why + on_cpu, bucketed=True, bucket_step=step)
    if precision == "fp32":
        return Placement("openvino", "cpu", "fp32", "OpenVINO fp32 requested" + on_cpu, True)
    if bf16:
        why = f"auto: CPU has {bf16}, OpenVINO bf16"
        return Placement("openvino", "cpu", "bf16", why + on_cpu, bucketed=True, bucket_step=step)
    why = "auto: no AMX/AVX512-BF16 on this CPU, OpenVINO fp32"
    return Placement("openvino", "cpu", "fp32", why + on_cpu, bucketed=True)
