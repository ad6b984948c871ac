"""One bench run: start each model's systems, measure every (system, load) per rep, check that
the vectors agree, and collect everything into one JSON-ready dict.

For each model the servers start once (gateway, the one-at-a-time loop, Infinity) and the
in-process systems load once; then for each workload every (system, load) runs once per rep, in
an order rotated from rep to rep, with a short pause between runs (host contention drifts
from minute to minute; rotating spreads it over every system).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import report
from bench.agreement import check_agreement
from bench.corpora import Workload, build_workloads
from bench.environment import machine_info, versions
from bench.lineup import GATEWAY_VARIANTS, Lineup
from bench.models import BenchModel, load_model
from bench.systems import (
    CpuWindow,
    GatewaySystem,
    HttpSystem,
    Load,
    System,
)

GATEWAY_LOADS = ("1x1", "8x1", "64x1", "8x32")
PEER_LOADS = ("64x1", "8x32")  # what Infinity and the one-at-a-time loop are measured at
OPENAI_LOAD = "8x32"  # the one load /v1/embeddings (base64) is measured at
LEAN_LOAD = "64x1"  # the one load the lean client drives (the 64x1 target's)
SHORT_TEXT = "The quick brown fox jumps over the lazy sleeping dog."
PAUSE_S = 0.3  # between runs: lets the previous system's threads go idle
WARM_TEXTS = 16


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.samples: list[dict[str, Any]] = []
        self.latency: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.lineup = Lineup(args, self.workdir)
        self.load_trace: list[float] = []

    # -- systems ------------------------------------------------------------------------------

    # -- measuring ----------------------------------------------------------------------------

    def plan(self, systems: Sequence[System], texts: int) -> list[tuple[System, Load | None]]:
        loads = {load.label: load for load in self.args.loads}
        runs: list[tuple[System, Load | None]] = []
        for system in systems:
            if not system.http:
                runs.append((system, None))
                continue
            if system.key == "gateway":
                labels = list(loads)
            elif system.key in GATEWAY_VARIANTS:
                labels = [label for label in PEER_LOADS if label in loads]
            elif system.key == "gateway-openai":
                labels = [OPENAI_LOAD] if OPENAI_LOAD in loads else list(loads)[-1:]
            elif system.key == "gateway-lean":
                labels = [LEAN_LOAD] if LEAN_LOAD in loads else list(loads)[:1]
            else:
                labels = [label for label in PEER_LOADS if label in loads]
            # A small subset can fit two loads to one shape (8x32 -> 8x1): measure it once.
            fitted = dict.fromkeys(loads[label].fitted(texts) for label in labels)
            runs.extend((system, load) for load in fitted)
        return runs

    def measure(
        self, model: BenchModel, workload: Workload, system: System, load: Load | None, rep: int
    ) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "model": model.key,
            "workload": workload.name,
            "system": system.key,
            "label": system.label,
            "load": load.label if load else None,
            "rep": rep,
            "texts": len(workload.texts),
            "tokens": workload.total_tokens,
            "error": None,
        }
        try:
            loop_pid = system.server_pid if system.http else None
            with CpuWindow(system.server_pid, loop_pid) as cpu:
                measured = system.measure(workload, load)
        except Exception as exc:
            sample["error"] = f"{type(exc).__name__}: {exc}"[:500]
            log(f"  {system.label} {sample['load'] or ''}: FAILED {sample['error']}")
            log(traceback.format_exc(limit=3))
            return sample
        p50 = report.percentile(measured.latencies_s, 50)
        p99 = report.percentile(measured.latencies_s, 99)
        sample.update(
            wall_s=measured.wall_s,
            texts_per_s=len(workload.texts) / measured.wall_s,
            tokens_per_s=workload.total_tokens / measured.wall_s,
            p50_ms=p50 * 1000 if p50 is not None else None,
            p99_ms=p99 * 1000 if p99 is not None else None,
            client_cpu_s=cpu.own,
            server_cpu_s=cpu.server if system.server_pid else None,
            server_main_cpu_s=cpu.server_main,
            others_cpu_s=cpu.others,
            steal_s=cpu.steal,
            extra=measured.extra,
            min_cos=None,
            _vectors=measured.vectors,
        )
        log(
            f"  {system.label:40} {sample['load'] or 'in-process':10} "
            f"{sample['texts_per_s']:8.1f} texts/s  wall {measured.wall_s:6.2f}s  "
            f"others' cpu {cpu.others / measured.wall_s:.2f}"
        )
        return sample

    def run_cell(
        self, model: BenchModel, workload: Workload, systems: Sequence[System]
    ) -> list[dict[str, Any]]:
        runs = self.plan(systems, len(workload.texts))
        warm = workload.take(min(len(workload.texts), WARM_TEXTS))
        log(f"[{model.key}/{workload.name}] warm-up")
        for system, load in runs:
            # Every path once (sessions, arenas, connections) before anything is timed.
            try:
                system.measure(warm, load.fitted(len(warm.texts)) if load else None)
            except Exception as exc:
                log(f"  warm-up of {system.label} failed: {exc}")
        cell: list[dict[str, Any]] = []
        for rep in range(self.args.reps):
            shift = rep % len(runs)
            log(
                f"[{model.key}/{workload.name}] rep {rep + 1}/{self.args.reps}, "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            for system, load in runs[shift:] + runs[:shift]:
                time.sleep(PAUSE_S)
                cell.append(self.measure(model, workload, system, load, rep))
                self.load_trace.append(os.getloadavg()[0])
        note = check_agreement(cell)
        if note:
            log(note)
            self.notes.append(note)
        return cell

    def run_latency(self, model: BenchModel, systems: Sequence[System]) -> None:
        n = self.args.latency_requests
        log(f"[{model.key}] one short text, 1 client, {n} requests per rep")
        for system in systems:
            try:
                system.single(SHORT_TEXT, 3)
            except Exception as exc:
                log(f"  warm-up of {system.label} failed: {exc}")
        for rep in range(self.args.reps):
            shift = rep % len(systems)
            for system in [*systems[shift:], *systems[:shift]]:
                time.sleep(PAUSE_S)
                entry: dict[str, Any] = {
                    "model": model.key,
                    "system": system.key,
                    "label": system.label,
                    "rep": rep,
                    "n": n,
                    "error": None,
                }
                try:
                    latencies = system.single(SHORT_TEXT, n)
                    entry["p50_ms"] = 1000 * (report.percentile(latencies, 50) or 0.0)
                    entry["p99_ms"] = 1000 * (report.percentile(latencies, 99) or 0.0)
                except Exception as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
                self.latency.append(entry)

    # -- the whole run ------------------------------------------------------------------------

    def execute(self, sizes: dict[str, dict[str, int]]) -> dict[str, Any]:
        """Measure everything; `sizes[model][workload]` = how many texts of the workload."""
        from bench.embedders import session_settings

        started = time.time()
        load_start = os.getloadavg()
        self.lineup.prepare_peers()
        from bench.efficiency import Shape, efficiency_rows, gemm_peaks
        from gateway.runtime import physical_cores

        cores = physical_cores()
        log("measuring the GEMM peaks (fp32 numpy, bf16 torch)")
        peaks = gemm_peaks(cores)
        log(f"  {peaks}")
        corpora = build_workloads(load_model(self.args.models[0]).tokenizer)
        cells: dict[str, dict[str, Any]] = {}
        models_info: dict[str, Any] = {}
        for key in self.args.models:
            model = load_model(key)
            models_info[key] = {
                "served_name": model.served_name,
                "description": model.description,
                "dim": model.dim,
                "folder": str(model.folder),
            }
            log(f"[{key}] starting systems")
            running: list[Any] = []
            systems: list[System] = []
            try:
                systems = self.lineup.start_systems(model, running)
                for name in self.args.workloads:
                    workload = corpora[name].take(sizes[key][name])
                    cell = self.run_cell(model, workload, systems)
                    self.samples.extend(cell)
                    bases = [
                        Load.parse(b).fitted(len(workload.texts)).label for b in report.BASELINES
                    ]
                    rows = report.summarize(cell, bases)
                    flops = Shape.from_config(model.st_folder / "config.json").flops(
                        workload.tokens
                    )
                    cells.setdefault(key, {})[name] = {
                        "workload": workload.describe(),
                        "baselines": bases,
                        "rows": rows,
                        "efficiency": efficiency_rows(rows, flops, cores, peaks),
                        "flops": flops,
                    }
                self.run_latency(model, systems)
                for system in systems:
                    # The lean and openai rows share the `gateway` server: its compute is
                    # recorded from the lean row too, for a run without the `gateway` row.
                    if not isinstance(system, GatewaySystem) or system.key.endswith("-openai"):
                        continue
                    if system.key.endswith("-lean") and any(s.key == "gateway" for s in systems):
                        continue
                    # Cumulative since the gateway (last) started: a summary, not a measure.
                    with contextlib.suppress(httpx.HTTPError, StopIteration):
                        stats = system.gateway.stats(model.served_name)
                        # What `auto` (or the variant's setting) chose: the targets' raw row.
                        compute = models_info[key].setdefault("gateway_compute", {})
                        compute[system.key] = stats.pop("compute")
                        if system.key == "gateway":
                            models_info[key]["gateway_stats_end"] = stats
            finally:
                for system in systems:
                    if hasattr(system, "stop"):  # fastembed's worker process
                        system.stop()
                for server in reversed(running):
                    server.stop()
                self.collect_logs(running)
                for system in systems:
                    if isinstance(system, HttpSystem) and system.restarts:
                        self.notes.append(
                            f"{model.key}: restarted after an outside stop: {system.restarts}"
                        )
        # Contention only ever lowers a measured peak: the best of the start and the end counts.
        later = gemm_peaks(cores)
        log(f"GEMM peaks at the end: {later}")
        for dtype, value in later.items():
            peaks[dtype] = max(peaks.get(dtype, 0.0), value)
        for model_cells in cells.values():
            for cell in model_cells.values():
                cell["efficiency"] = efficiency_rows(cell["rows"], cell["flops"], cores, peaks)
        trace = self.load_trace
        return {
            "started": datetime.fromtimestamp(started, UTC).isoformat(),
            "duration_s": round(time.time() - started, 1),
            "argv": sys.argv[1:],
            "quick": self.args.quick,
            "reps": self.args.reps,
            "machine": machine_info(),
            "load_average": {
                "start": load_start,
                "end": os.getloadavg(),
                "during_mean_1min": round(float(np.mean(trace)), 2) if trace else None,
                "during_max_1min": round(float(np.max(trace)), 2) if trace else None,
            },
            "versions": versions(),
            "ort_session": session_settings(),
            "gateway_env": self.args.gateway_env,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "infinity": self.lineup.peer_view(self.lineup.infinity),
            "fastembed": self.lineup.peer_view(self.lineup.fastembed),
            "gemm_peaks_gflops": peaks,
            "physical_cores": cores,
            "models": models_info,
            "corpora": {name: w.describe() for name, w in corpora.items()},
            "cells": cells,
            "latency": {
                key: report.latency_rows([e for e in self.latency if e["model"] == key])
                for key in self.args.models
            },
            "samples": [
                {k: v for k, v in s.items() if not k.startswith("_")} for s in self.samples
            ],
            "latency_samples": self.latency,
            "notes": self.notes,
        }

    def collect_logs(self, running: Sequence[Any]) -> None:
        for server in running:
            tail = server.log_tail(5)
            if "Traceback" in tail or "ERROR" in tail:
                self.notes.append(f"{server.name} log ({server.log_path}) ends with:\n{tail}")
