"""Turning per-rep samples into medians, ratios and the printed tables.

Ratios are taken per rep (a system's rate over the gateway's rate in the same rep, measured
seconds apart) and then the median over reps: host contention moves absolute numbers by up to 2x
between minutes on shared 2-core machines, much less so ratios.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

# The gateway configurations every row is compared with: many clients with one text each (what
# dynamic batching is for) and a few clients with batches (what RAG ingestion sends).
BASELINES = ("64x1", "8x32")
GATEWAY = "gateway"
LEAN = "gateway-lean"  # the same server, driven by bench.lean_load


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def baseline_of(samples: Sequence[dict[str, Any]], load: str, rep: int) -> float | None:
    """The gateway's texts/s at `load` in rep `rep`, if that was measured."""
    for s in samples:
        if s["system"] == GATEWAY and s["load"] == load and s["rep"] == rep and not s["error"]:
            return s["texts_per_s"]
    return None


def summarize(samples: Sequence[dict[str, Any]], bases: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (system, load) of one model x workload: medians over reps, and per-rep ratios
    to the gateway's /api/embed at each load in `bases` (BASELINES as fitted to the workload)."""
    rows: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for s in samples:
        rows.setdefault((s["system"], s["load"]), []).append(s)
    out = []
    for (system, load), group in rows.items():
        ok = [s for s in group if not s["error"]]
        row: dict[str, Any] = {
            "system": system,
            "label": group[0]["label"],
            "load": load,
            "reps": len(ok),
            "errors": sorted({s["error"] for s in group if s["error"]}),
            "texts_per_s": median(s["texts_per_s"] for s in ok),
            "tokens_per_s": median(s["tokens_per_s"] for s in ok),
            "p50_ms": median(s["p50_ms"] for s in ok),
            "p99_ms": median(s["p99_ms"] for s in ok),
            "client_cpu_per_wall": median(s["client_cpu_s"] / s["wall_s"] for s in ok),
            "server_cpu_per_wall": median(
                s["server_cpu_s"] / s["wall_s"] if s["server_cpu_s"] is not None else None
                for s in ok
            ),
            "others_cpu_per_wall": median(s["others_cpu_s"] / s["wall_s"] for s in ok),
            # What one text costs the machine: the client's (or in-process system's) CPU plus
            # the server's, and of that the server's event loop (uvicorn's first thread).
            "cpu_ms_per_text": median(
                (s["client_cpu_s"] + (s["server_cpu_s"] or 0.0)) / s["texts"] * 1000 for s in ok
            ),
            "loop_ms_per_text": median(
                s["server_main_cpu_s"] / s["texts"] * 1000
                if s.get("server_main_cpu_s") is not None
                else None
                for s in ok
            ),
            "min_cos": worst_cos(s["min_cos"] for s in ok if s["min_cos"] is not None),
            "texts": ok[0]["texts"] if ok else None,
            "agreement_reference": next(
                (s["agreement_reference"] for s in ok if s.get("agreement_reference")), None
            ),
        }
        for base in bases:
            ratios = []
            for s in ok:
                reference = baseline_of(samples, base, s["rep"])
                if reference:
                    ratios.append(s["texts_per_s"] / reference)
            row[f"x_gateway_{base}"] = median(ratios)
        for key in ("padding_ratio", "mean_batch"):
            values = [s["extra"].get(key) for s in ok if key in s["extra"]]
            if values:
                row[key] = median(values)
        out.append(row)
    return out


def agrees(min_cos: float, floor: float) -> bool:
    """Whether a minimum cosine passes `floor`; False for NaN (non-finite vectors)."""
    return min_cos >= floor


def worst_cos(values: Iterable[float]) -> float | None:
    """The smallest cosine, NaN if any is NaN (the builtin min skips a NaN that is not first)."""
    present = list(values)
    if not present:
        return None
    return math.nan if any(math.isnan(v) for v in present) else min(present)


def _fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def table(rows: Sequence[dict[str, Any]], min_cos: float) -> str:
    """A markdown table of summarize() rows."""
    bases = sorted(
        {k.removeprefix("x_gateway_") for r in rows for k in r if k.startswith("x_gateway_")},
        key=lambda b: (b.split("x")[1] != "1", b),
    )
    head = ["system", "load", "texts/s", "tok/s", "p50 ms", "p99 ms"]
    head += [f"x gw {b}" for b in bases]
    references = sorted(
        {str(r["agreement_reference"]) for r in rows if r.get("agreement_reference")}
    )
    cos_head = f"min cos vs {', '.join(references)}" if references else "min cos (no reference)"
    head += ["cpu/wall srv+cli (others)", "cpu ms/text (srv loop)", "pad", cos_head]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["reps"] == 0:
            cells = [r["label"], r["load"] or "in-process", "failed: " + "; ".join(r["errors"])]
            cells += [""] * (len(head) - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
            continue
        server = r["server_cpu_per_wall"]
        cpu = (
            f"{server:.2f}+{r['client_cpu_per_wall']:.2f}"
            if server is not None
            else f"{r['client_cpu_per_wall']:.2f}"
        ) + f" ({r['others_cpu_per_wall']:.2f})"
        per_text = _fmt(r.get("cpu_ms_per_text"), 3)
        if r.get("loop_ms_per_text") is not None:
            per_text += f" ({r['loop_ms_per_text']:.3f})"
        pad = _fmt(r.get("padding_ratio"), 3)
        if r.get("mean_batch"):
            pad += f" (batch {r['mean_batch']:.1f})"
        cos = _fmt(r["min_cos"], 5)
        if r["min_cos"] is not None and not agrees(r["min_cos"], min_cos):
            cos += " **DISAGREES**"
        cells = [
            r["label"],
            r["load"] or "in-process",
            _fmt(r["texts_per_s"], 1),
            _fmt(r["tokens_per_s"]),
            _fmt(r["p50_ms"], 1),
            _fmt(r["p99_ms"], 1),
            *[_fmt(r.get(f"x_gateway_{b}"), 2) for b in bases],
            cpu,
            per_text,
            pad,
            cos,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_rows(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Single short text, one client: median over reps of each rep's p50 and p99."""
    by_system: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_system.setdefault(s["system"], []).append(s)
    rows = []
    raw = median(s["p50_ms"] for s in by_system.get("raw", []) if not s["error"])
    for system, group in by_system.items():
        ok = [s for s in group if not s["error"]]
        p50 = median(s["p50_ms"] for s in ok)
        rows.append(
            {
                "system": system,
                "label": group[0]["label"],
                "reps": len(ok),
                "errors": sorted({s["error"] for s in group if s["error"]}),
                "p50_ms": p50,
                "p99_ms": median(s["p99_ms"] for s in ok),
                "x_raw_p50": p50 / raw if p50 and raw else None,
            }
        )
    return rows


def latency_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| system | p50 ms | p99 ms | p50 / raw ORT p50 |", "|---|---|---|---|"]
    for r in rows:
        if not r["reps"]:
            lines.append(f"| {r['label']} | failed: {'; '.join(r['errors'])} | | |")
            continue
        lines.append(
            f"| {r['label']} | {_fmt(r['p50_ms'], 2)} | {_fmt(r['p99_ms'], 2)} "
            f"| {_fmt(r['x_raw_p50'], 2)} |"
        )
    return "\n".join(lines)


def print_report(result: dict[str, Any], min_cos: float, short_text: str) -> None:
    """The tables of a run, from its result dict, on stdout."""
    out = []
    load = result["load_average"]
    out.append(
        f"# Bench {result['started']} ({result['duration_s']:.0f} s, {result['reps']} reps"
        f"{', QUICK' if result['quick'] else ''})"
    )
    out.append(
        f"machine: {result['machine']['cpu']}, {result['machine']['logical_cpus']} CPUs; "
        f"load average 1 min: start {load['start'][0]:.2f}, during mean "
        f"{load['during_mean_1min']} max {load['during_max_1min']}, end {load['end'][0]:.2f}"
    )
    inf = result["infinity"]
    if inf.get("requested"):
        if inf.get("error"):
            out.append(f"Infinity: NOT RUN: {inf['error']}")
        else:
            out.append(f"Infinity: {inf.get('versions')}")
            for key, error in inf.get("errors", {}).items():
                out.append(f"Infinity did not start for {key}: {error}")
    fe = result.get("fastembed", {})
    if fe.get("requested"):
        out.append(
            f"fastembed: NOT RUN: {fe['error']}"
            if fe.get("error")
            else f"fastembed: {fe.get('versions')}"
        )
        for key, error in fe.get("errors", {}).items():
            out.append(f"fastembed did not start for {key}: {error}")
    out.append(
        "Servers run as subprocesses on loopback; the aiohttp load generator shares the same "
        "cores (rows 'lean client': bench.lean_load, ~0.15 ms of CPU per request instead of "
        "~0.5, answers decoded after the clock stops). Ratios 'x gw L' = texts/s over the "
        "gateway's /api/embed texts/s at load L "
        "(CLIENTSxTEXTS per request), taken per rep, median over reps. cpu/wall: server + "
        "client CPU seconds per wall second (in-process: this process), (others) = everything "
        "else on the machine meanwhile; cpu ms/text: those CPU seconds per text (srv loop: the "
        "server's first thread, uvicorn's event loop). pad = padded/real tokens (gateway: "
        "from /admin/models)."
    )
    from bench.targets import (
        describe,
        gateway_compute,
        latency_target_lines,
        raw_backend,
        target_lines,
    )

    for key, cells in result["cells"].items():
        chosen = result["models"][key].get("gateway_compute", {})
        compute = gateway_compute(chosen)
        if chosen:
            out.append(f"\n{key}: the gateway's compute, as /admin/models reports it:")
            for system, placement in chosen.items():
                out.append(f"- {system}: {describe(placement)} ({placement.get('reason')})")
            out.append(
                f"- raw backend of the `auto` gateway (the 64x1 and one-text targets' baseline): "
                f"{raw_backend(compute) or 'none measured for it'}"
            )
        for name, cell in cells.items():
            w = cell["workload"]
            out.append(
                f"\n## {key} ({result['models'][key]['served_name']}) x {name}: {w['texts']} texts,"
                f" {w['tokens']:,} real tokens (p50 {w['tokens_p50']}, max {w['tokens_max']})"
            )
            out.append(table(cell["rows"], min_cos))
            if cell.get("efficiency"):
                from bench.efficiency import efficiency_table

                out.append(
                    f"\nEfficiency ({result['physical_cores']} cores; {cell['flops'] / 1e9:,.0f}"
                    " GFLOP of real-token work; GEMM peaks: the best of this run's start and end, "
                    "lowered by contention, so shares are upper bounds):"
                )
                out.append(efficiency_table(cell["efficiency"], result["gemm_peaks_gflops"]))
            base = cell["baselines"][-1]
            samples = [s for s in result["samples"] if s["model"] == key and s["workload"] == name]
            lines = target_lines(name, samples, base, compute)
            if lines:
                out.append("\nTargets (ratios per rep, median):\n" + "\n".join(lines))
            cross = next(
                (
                    s.get("cross_text_cos_median")
                    for s in result["samples"]
                    if s["model"] == key and s["workload"] == name and "cross_text_cos_median" in s
                ),
                None,
            )
            if cross is not None:
                out.append(
                    f"(different texts have median cosine {cross:.3f}: the agreement "
                    "check can tell rows apart)"
                    if cross < min_cos
                    else f"WARNING: different texts have median cosine {cross:.4f}; "
                    "the agreement check cannot tell rows apart"
                )
        out.append(f"\n## {key}: one short text ({short_text!r}), 1 client")
        out.append(latency_table(result["latency"][key]))
        lines = latency_target_lines(result["latency"][key], compute)
        out.append("\nTargets:\n" + "\n".join(lines))
    for note in result["notes"]:
        out.append(f"\nnote: {note}")
    print("\n".join(out), flush=True)


def disagreements(result: dict[str, Any], min_cos: float) -> list[str]:
    """Every sample whose vectors are further than `min_cos` from the reference system's, or
    not finite (NaN fails, as does a NaN reference)."""
    bad = []
    for s in result["samples"]:
        if s.get("min_cos") is not None and not agrees(s["min_cos"], min_cos):
            line = f"{s['model']}/{s['workload']} {s['label']} {s['load']}: {s['min_cos']:.5f}"
            if s.get("non_finite_rows"):
                line += f" ({s['non_finite_rows']} vectors hold NaN or infinity)"
            bad.append(line)
    return bad
