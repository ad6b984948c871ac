"""What `make gpu-check` counts as a failure, on plain data (tests/unit/test_gpu_check_logic.py).

On a GPU run (not `--cpu-dry-run`) every figure must come from CUDA: the ONNX Runtime session's
providers must start with the CUDA provider, the gateway's reported placement must say cuda,
and its process must hold GPU memory. A figure measured on the CPU under a CUDA label is the
worst a check like this can print. Every threshold is written so that NaN fails it
(`not (x >= floor)`): fp16 overflowing to inf/NaN is the failure this check exists to catch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

CUDA_PROVIDER = "CUDAExecutionProvider"
MIN_COSINE, MAX_SCORE_DIFF, MAX_BATCH_DIFF = 0.999, 1e-2, 1e-5
TOTAL_S = 360  # the whole `make gpu-check`, the GPU extra's install included


def finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def environment_problems(env: Mapping[str, Any], dry_run: bool) -> list[str]:
    """A GPU run needs the CUDA provider in this onnxruntime, NVML answering, and `auto`
    placing models on cuda."""
    if dry_run:
        return []
    problems = []
    if CUDA_PROVIDER not in env.get("providers", []):
        problems.append(f"onnxruntime has no {CUDA_PROVIDER} (providers: {env.get('providers')})")
    if env.get("nvml") is None:
        problems.append("NVML does not answer: no GPU memory figures")
    placement = env.get("default_placement") or {}
    if placement.get("device") != "cuda":
        problems.append(f"the default placement is not on cuda: {placement}")
    return problems


def session_problems(label: str, device: str, providers: Sequence[str], dry_run: bool) -> list[str]:
    """A CUDA-labelled session must run on the CUDA provider (on a GPU run)."""
    if dry_run:
        return []
    if device != "cuda" or list(providers[:1]) != [CUDA_PROVIDER]:
        return [f"{label}: ran on {device} (session providers {list(providers)}), not CUDA"]
    return []


def parity_problems(row: Mapping[str, Any], dry_run: bool) -> list[str]:
    """One tools.fast_path.Figures row (as a dict) against the thresholds."""
    label = f"{row['kind']} {row['placement']}"
    problems = session_problems(label, row.get("device", "?"), row.get("providers", []), dry_run)
    if row.get("non_finite", 0) != 0:
        problems.append(f"{label}: {row['non_finite']} outputs hold NaN or infinity")
    batch = row["max_abs_alone_vs_batch"]
    if not (finite(batch) and batch <= MAX_BATCH_DIFF):
        problems.append(f"{label}: alone vs batch {batch:.1e}")
    if row["kind"] == "cross-encoder":
        score = row.get("max_score_diff")
        if not (finite(score) and score <= MAX_SCORE_DIFF):
            problems.append(f"{label}: scores off by {score}")
        return problems
    cosines = [row["min_cos_to_fp32"], *row.get("per_width", {}).values()]
    if not all(finite(c) and c >= MIN_COSINE for c in cosines):
        worst = next((c for c in cosines if not finite(c)), min(cosines))
        problems.append(f"{label}: min cos {worst:.6f}")
    return problems


def speedup_problems(label: str, ratio: float | None, dry_run: bool) -> list[str]:
    """On a GPU, CUDA slower than the CPU (or no figure) means something is not right."""
    if dry_run:
        return []
    if ratio is None or not (finite(ratio) and ratio >= 1.0):
        return [f"{label}: {ratio}x the CPU, not faster"]
    return []


def gateway_problems(
    compute: Mapping[str, Any], gpu_memory: int | None, nvml_per_process: bool, dry_run: bool
) -> list[str]:
    """The "gpu" gateway: what /admin/models says its model runs on, and (on a GPU) whether
    NVML sees its process holding GPU memory. A dry run's "gpu" gateway takes the CUDA path
    on a CPU-only onnxruntime, so it must say cpu, with the reason."""
    device, reason = compute.get("device"), str(compute.get("reason", ""))
    if dry_run:
        if device != "cpu" or "no CUDA provider" not in reason:
            return [f"the dry run's CUDA-path gateway reports {compute}, not cpu with the reason"]
        return []
    problems = []
    if device != "cuda":
        problems.append(f"the gpu gateway's model runs on {device}: {reason}")
    if nvml_per_process and not gpu_memory:
        problems.append("NVML shows no GPU memory held by the gpu gateway's process")
    return problems


def deadline_problems(total_seconds: float) -> list[str]:
    if not (total_seconds <= TOTAL_S):
        return [f"took {total_seconds:.0f} s, over the {TOTAL_S} s bound (install included)"]
    return []
