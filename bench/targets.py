"""The issue's targets for the gateway's fast path, from the per-rep ratios.

The 64x1 and one-text targets compare the gateway with its *raw backend* in-process: the row
that runs what the gateway's `auto` chose (its model's `compute` from /admin/models, recorded
per run): OpenVINO bf16 on AMX/AVX512-BF16 CPUs with OpenVINO, ONNX Runtime fp32 elsewhere. A
run whose gateway chose something no raw row measures says so instead of comparing with the
wrong baseline (an OpenVINO import failure would otherwise show only as a worse ratio).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from bench.report import GATEWAY, LEAN, median

# (gateway rows, their load, row, that row's load, at least). BATCHED is 8x32 as fitted to the
# workload; a row's load None means in-process; RAW_BACKEND is the raw row of what `auto` chose.
# A target with two gateway rows is measured by either: the 64x1 target by both clients
# (aiohttp, and the lean one that costs the cores less), each shown when it ran; when only one
# ran, its line says so (`--systems gateway-lean` runs the lean client alone).
BATCHED = "batched"
RAW_BACKEND = "raw backend"
BOTH_CLIENTS = (GATEWAY, LEAN)
TARGETS: dict[str, tuple[tuple[tuple[str, ...], str, str, str | None, float], ...]] = {
    "sentences": (
        ((GATEWAY,), BATCHED, "st", None, 2.5),
        ((GATEWAY,), BATCHED, "raw", None, 2.0),
        ((GATEWAY,), BATCHED, "infinity", "8x32", 2.5),
        (BOTH_CLIENTS, "64x1", RAW_BACKEND, None, 0.9),
    ),
    "passages": (((GATEWAY,), BATCHED, "st", None, 2.0),),
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


def gateway_compute(chosen: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """What `auto` chose, as recorded per row (`models.<key>.gateway_compute`): the `gateway`
    row's, else the lean client's (the same server, when it ran alone)."""
    return chosen.get(GATEWAY) or chosen.get(LEAN)


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


def measured_lines(
    ratios: Mapping[str, float | None], name: str, judge: Callable[[float], str]
) -> list[str]:
    """One line per gateway row whose ratio was measured: "- {row} {name}: {ratio}x (judged)";
    when a row was not, the lines say which one was used; none measured: one line that says so."""
    measured = {row: ratio for row, ratio in ratios.items() if ratio is not None}
    if not measured:
        return [f"- {' or '.join(ratios)} {name}: not measured"]
    missing = [row for row in ratios if row not in measured]
    note = f"; the {', '.join(measured)} row: {', '.join(missing)} not measured" if missing else ""
    return [
        f"- {row} {name}: {ratio:.2f}x ({judge(ratio)}{note})" for row, ratio in measured.items()
    ]


def target_lines(
    workload: str,
    samples: Sequence[dict[str, Any]],
    batched: str,
    compute: Mapping[str, Any] | None,
) -> list[str]:
    """Each target's gateway rows over the target row, from the per-rep ratios; `compute` is
    what the gateway's `auto` chose, which names its raw backend's row."""
    out = []
    raw = raw_backend(compute)
    for rows, gateway_load, system, load, goal in TARGETS.get(workload, ()):
        base = batched if gateway_load == BATCHED else gateway_load
        if system == RAW_BACKEND:
            if raw is None:
                out.append(
                    f"- {' or '.join(rows)} {base} / its raw backend: the gateway ran "
                    f"{describe(compute)}, which no raw row runs: not measured"
                )
                continue
            system = raw
        theirs = (system, base if load else None)
        ratios = {row: rep_ratio(samples, (row, base), theirs) for row in rows}
        out += measured_lines(ratios, f"{base} / {system}", partial(at_least, goal))
    return out


def at_least(goal: float, ratio: float) -> str:
    return f"target >= {goal}x: {'met' if ratio >= goal else 'NOT met'}"


def at_most(goal: float, ratio: float) -> str:
    return f"target <= {goal}x: {'met' if ratio <= goal else 'NOT met'}"


def latency_target_lines(
    rows: Sequence[dict[str, Any]], compute: Mapping[str, Any] | None
) -> list[str]:
    """Each client's p50 for one short text over its raw backend's (either client may run)."""
    _, most = LATENCY_TARGET
    system = raw_backend(compute)
    if system is None:
        return [
            f"- {' or '.join(BOTH_CLIENTS)} p50 / its raw backend p50: the gateway ran "
            f"{describe(compute)}, which no raw row runs: not measured"
        ]
    p50 = {r["system"]: r["p50_ms"] for r in rows if r["reps"]}
    ratios = {
        gateway: p50[gateway] / p50[system] if gateway in p50 and system in p50 else None
        for gateway in BOTH_CLIENTS
    }
    return measured_lines(ratios, f"p50 / {system} p50", partial(at_most, most))
