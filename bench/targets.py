"""The issue's targets for the gateway's fast path, from the per-rep ratios.

The 64x1 and one-text targets compare the gateway with its *raw backend* in-process: the row
that runs what the gateway's `auto` chose (its model's `compute` from /admin/models, recorded
per run): OpenVINO bf16 on AMX/AVX512-BF16 CPUs with OpenVINO, ONNX Runtime fp32 elsewhere. A
run whose gateway chose something no raw row measures says so instead of comparing with the
wrong baseline (an OpenVINO import failure would otherwise show only as a worse ratio).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.report import GATEWAY, LEAN, median

# (gateway row, its load, row, that row's load, at least). BATCHED is 8x32 as fitted to the
# workload; a row's load None means in-process; RAW_BACKEND is the raw row of what `auto` chose.
# The 64x1 target is shown for both clients (aiohttp, and the lean one that costs the cores less).
BATCHED = "batched"
RAW_BACKEND = "raw backend"
TARGETS = {
    "sentences": (
        (GATEWAY, BATCHED, "st", None, 2.5),
        (GATEWAY, BATCHED, "raw", None, 2.0),
        (GATEWAY, BATCHED, "infinity", "8x32", 2.5),
        (GATEWAY, "64x1", RAW_BACKEND, None, 0.9),
        (LEAN, "64x1", RAW_BACKEND, None, 0.9),
    ),
    "passages": ((GATEWAY, BATCHED, "st", None, 2.0),),
}
# One short text at one client: the gateway's p50 over its raw backend's, at most.
LATENCY_TARGET = (RAW_BACKEND, 1.3)
# (backend, precision) of the gateway's compute -> the in-process row that runs the same.
RAW_ROWS = {
    ("openvino", "bf16"): "raw-ov-bf16",
    ("openvino", "fp32"): "raw-ov-fp32",
    ("onnxruntime", "fp32"): "raw",
}


def raw_backend(compute: Mapping[str, Any] | None) -> str | None:
    """The raw row of the gateway's compute placement; None when unknown or no row runs it."""
    if not compute:
        return None
    return RAW_ROWS.get((str(compute.get("backend")), str(compute.get("precision"))))


def describe(compute: Mapping[str, Any] | None) -> str:
    if not compute:
        return "unknown (not recorded)"
    return f"{compute.get('backend')} {compute.get('precision')} on {compute.get('device')}"


def rep_ratio(
    samples: Sequence[dict[str, Any]], ours: tuple[str, str | None], theirs: tuple[str, str | None]
) -> float | None:
    """Median over reps of (system, load) `ours`' texts/s over `theirs`' in the same rep."""
    rates: dict[tuple[str, str | None], dict[int, float]] = {ours: {}, theirs: {}}
    for s in samples:
        key = (s["system"], s["load"])
        if key in rates and not s["error"]:
            rates[key][s["rep"]] = s["texts_per_s"]
    return median(
        rates[ours][rep] / rates[theirs][rep] for rep in rates[ours] if rates[theirs].get(rep)
    )


def target_lines(
    workload: str,
    samples: Sequence[dict[str, Any]],
    batched: str,
    compute: Mapping[str, Any] | None,
) -> list[str]:
    """Each target's gateway row over the target row, from the per-rep ratios; `compute` is
    what the gateway's `auto` chose, which names its raw backend's row."""
    out = []
    raw = raw_backend(compute)
    for gateway, gateway_load, system, load, goal in TARGETS.get(workload, ()):
        base = batched if gateway_load == BATCHED else gateway_load
        if system == RAW_BACKEND:
            if raw is None:
                out.append(
                    f"- {gateway} {base} / its raw backend: the gateway ran {describe(compute)}, "
                    "which no raw row runs: not measured"
                )
                continue
            system = raw
        name = f"{gateway} {base} / {system}"
        ratio = rep_ratio(samples, (gateway, base), (system, base if load else None))
        if ratio is None:
            out.append(f"- {name}: not measured")
            continue
        verdict = "met" if ratio >= goal else "NOT met"
        out.append(f"- {name}: {ratio:.2f}x (target >= {goal}x: {verdict})")
    return out


def latency_target_lines(
    rows: Sequence[dict[str, Any]], compute: Mapping[str, Any] | None
) -> list[str]:
    _, most = LATENCY_TARGET
    system = raw_backend(compute)
    p50 = {r["system"]: r["p50_ms"] for r in rows if r["reps"]}
    out = []
    for gateway in (GATEWAY, LEAN):
        if system is None:
            out.append(
                f"- {gateway} p50 / its raw backend p50: the gateway ran {describe(compute)}, "
                "which no raw row runs: not measured"
            )
        elif gateway not in p50 or system not in p50:
            out.append(f"- {gateway} p50 / {system} p50: not measured")
        else:
            ratio = p50[gateway] / p50[system]
            verdict = "met" if ratio <= most else "NOT met"
            out.append(
                f"- {gateway} p50 / {system} p50: {ratio:.2f}x (target <= {most}x: {verdict})"
            )
    return out
