"""One bench run: start each model's systems, measure every (system, load) per rep, check that
the vectors agree, and collect everything into one JSON-ready dict.

For each model the servers start once (gateway, the one-at-a-time loop, Infinity) and the
in-process systems load once; then for each workload every (system, load) runs once per rep, in
an order rotated from rep to rep, with a short pause between runs (perf-baseline.md section 1).
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
from bench.corpora import Workload, build_workloads
from bench.environment import machine_info, versions
from bench.load import INFINITY_FLOAT, OLLAMA, OPENAI_BASE64
from bench.models import BenchModel, load_model
from bench.systems import (
    CpuWindow,
    GatewaySystem,
    HttpSystem,
    Load,
    RawOrt,
    SentenceTransformers,
    System,
)

ALL_SYSTEMS = (
    "raw",
    "raw-ov-bf16",
    "raw-ov-fp32",
    "st",
    "fastembed",
    "gateway",
    "gateway-openai",
    "gateway-ov-fp32",
    "gateway-exact",
    "infinity",
    "loop",
)
# The gateway under each compute setting: `gateway` is what `auto` picks on this machine.
GATEWAY_VARIANTS = {
    "gateway": (
        "(a) gateway /api/embed, auto",
        {"GATEWAY_BACKEND": "auto", "GATEWAY_PRECISION": "auto"},
    ),
    "gateway-ov-fp32": (
        "(a2) gateway /api/embed, OpenVINO fp32",
        {"GATEWAY_BACKEND": "openvino", "GATEWAY_PRECISION": "fp32"},
    ),
    "gateway-exact": (
        "(a3) gateway /api/embed, ORT fp32 (exact)",
        {"GATEWAY_BACKEND": "onnxruntime", "GATEWAY_PRECISION": "fp32"},
    ),
}
GATEWAY_LOADS = ("1x1", "8x1", "64x1", "8x32")
PEER_LOADS = ("64x1", "8x32")  # what Infinity and the one-at-a-time loop are measured at
OPENAI_LOAD = "8x32"  # the one load /v1/embeddings (base64) is measured at
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
        self.infinity: dict[str, Any] = {"requested": "infinity" in args.systems}
        self.fastembed: dict[str, Any] = {"requested": "fastembed" in args.systems}
        self.load_trace: list[float] = []

    # -- systems ------------------------------------------------------------------------------

    def prepare_infinity(self) -> None:
        if not self.infinity["requested"]:
            return
        from bench.peer_envs import INFINITY, ensure_peer

        env = ensure_peer(INFINITY, log)
        self.infinity.update(
            python=str(env.python) if env.python else None, versions=env.versions, error=env.error
        )
        if env.error:
            log(f"infinity unavailable: {env.error}")

    def prepare_fastembed(self) -> None:
        if not self.fastembed["requested"]:
            return
        from bench.peer_envs import FASTEMBED, ensure_peer

        env = ensure_peer(FASTEMBED, log)
        self.fastembed.update(
            python=str(env.python) if env.python else None, versions=env.versions, error=env.error
        )
        if env.error:
            log(f"fastembed unavailable: {env.error}")

    def start_compute_rows(self, model: BenchModel, threads: int) -> list[System]:
        """Raw OpenVINO in-process and fastembed (its own venv); fastembed failing is noted."""
        from bench.compute_rows import FastEmbed, OpenVinoEmbedder, RawOpenVino

        systems: list[System] = []
        for precision in ("bf16", "fp32"):
            if f"raw-ov-{precision}" in self.args.systems:
                embedder = OpenVinoEmbedder(model.onnx, model.tokenizer, precision)
                systems.append(RawOpenVino(embedder, precision, self.args.raw_batch))
        if "fastembed" in self.args.systems and self.fastembed.get("python"):
            try:
                python = Path(self.fastembed["python"])
                systems.append(FastEmbed(model, python, threads, self.args.raw_batch))
            except (RuntimeError, OSError) as exc:
                self.fastembed.setdefault("errors", {})[model.key] = str(exc)
                log(f"fastembed did not start for {model.key}: {exc}")
        return systems

    def start_systems(self, model: BenchModel, running: list[Any]) -> list[System]:
        """The model's systems; servers are appended to `running` as they start, so the caller
        can stop them whatever fails. Infinity failing to start is recorded, not fatal."""
        from bench import servers
        from bench.embedders import OrtEmbedder, StEmbedder

        wanted = self.args.systems
        systems: list[System] = []
        raw = OrtEmbedder(model.onnx, model.tokenizer)
        if "raw" in wanted:
            systems.append(RawOrt(raw, self.args.raw_batch))
        systems.extend(self.start_compute_rows(model, raw.threads))
        if "st" in wanted:
            systems.append(SentenceTransformers(StEmbedder(model.st_folder, raw.threads)))
        for key in ("gateway-ov-fp32", "gateway-exact"):
            if key in wanted:
                label, compute = GATEWAY_VARIANTS[key]
                env = {"GATEWAY_CACHE_BYTES": "0", **compute}
                env.update(kv.split("=", 1) for kv in self.args.gateway_env)
                variant = servers.Gateway(model, self.workdir, env)
                running.append(variant)
                variant.start()
                systems.append(GatewaySystem(key, label, variant, OLLAMA, model.served_name))
        if {"gateway", "gateway-openai"} & set(wanted):
            # The embedding cache would answer repeated reps from memory: measure inference.
            label, compute = GATEWAY_VARIANTS["gateway"]
            env = {"GATEWAY_CACHE_BYTES": "0", **compute}
            env.update(kv.split("=", 1) for kv in self.args.gateway_env)
            gateway = servers.Gateway(model, self.workdir, env)
            running.append(gateway)
            gateway.start()
            rows = []
            if "gateway" in wanted:
                rows.append(GatewaySystem("gateway", label, gateway, OLLAMA, model.served_name))
            if "gateway-openai" in wanted:
                label = "(a) gateway /v1/embeddings base64"
                rows.append(
                    GatewaySystem(
                        "gateway-openai", label, gateway, OPENAI_BASE64, model.served_name
                    )
                )
            for row in rows:
                row.siblings = rows
            systems.extend(rows)
        if "infinity" in wanted and self.infinity.get("python"):
            server = servers.infinity_server(model, Path(self.infinity["python"]), self.workdir)
            try:
                server.start()
            except RuntimeError as exc:
                self.infinity.setdefault("errors", {})[model.key] = f"{exc}\n{server.log_tail()}"
                log(f"infinity did not start for {model.key}: {exc}")
            else:
                running.append(server)
                label = "(d) Infinity (torch) /embeddings"
                systems.append(
                    HttpSystem("infinity", label, server, INFINITY_FLOAT, model.served_name)
                )
        if "loop" in wanted:
            server = servers.loop_server(model, self.workdir)
            running.append(server)
            server.start()
            label = "(e) one-at-a-time loop /api/embed"
            systems.append(HttpSystem("loop", label, server, OLLAMA, model.served_name))
        return systems

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
            with CpuWindow(system.server_pid) as cpu:
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
        check_agreement(cell)
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
        self.prepare_infinity()
        self.prepare_fastembed()
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
                systems = self.start_systems(model, running)
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
                    if isinstance(system, GatewaySystem) and system.key == "gateway":
                        # Cumulative since the gateway (last) started: a summary, not a measure.
                        with contextlib.suppress(httpx.HTTPError):
                            stats = system.gateway.stats(model.served_name)
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
            "infinity": {k: v for k, v in self.infinity.items() if k != "python"},
            "fastembed": {k: v for k, v in self.fastembed.items() if k != "python"},
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


def check_agreement(cell: list[dict[str, Any]]) -> None:
    """Set each sample's `min_cos`: its vectors against raw ORT's (else the first system's) for
    the same texts, so a fast system that returns wrong vectors stands out."""
    with_vectors = [s for s in cell if "_vectors" in s]
    if not with_vectors:
        return
    reference = next((s for s in with_vectors if s["system"] == "raw"), with_vectors[0])
    ref = reference["_vectors"]
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    for s in with_vectors:
        vectors = s.pop("_vectors")
        s["agreement_reference"] = reference["system"]
        if vectors.shape != ref.shape:
            s["min_cos"] = -1.0
            s["error"] = f"returned {vectors.shape} vectors, expected {ref.shape}"
            continue
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        s["min_cos"] = float((vectors * ref).sum(axis=1).min())
    if len(ref) > 1:
        # The check means something only if different texts are well below the floor
        # (random-weight models can map every text to nearly one vector).
        cross = float(np.median((ref[:-1] * ref[1:]).sum(axis=1)))
        for s in cell:
            s["cross_text_cos_median"] = cross
