"""The VRAM eviction scenario of `make gpu-check` (host memory in a --cpu-dry-run).

Two models' footprints are measured by a gateway without a cap (started twice, so the loads
are measured with warm graph caches, as the next gateway will load them). A second gateway gets a
budget that holds the larger model alone but not both, with each model's measured footprint as
its registry memory_estimate; embedding with one model and then the other must evict the first.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.models import load_model
from tools.exports import export_tiny_nomic
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, nomic_entry, write_registry

FIRST, SECOND = "evict-minilm", "evict-nomic"


def _entries(estimates: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    minilm = load_model("minilm").folder
    entries = {
        FIRST: minilm_entry(minilm, quantization="F32", max_tokens=256),
        SECOND: nomic_entry(export_tiny_nomic()),
    }
    for name, estimate in (estimates or {}).items():
        entries[name]["memory_estimate"] = estimate
    return entries


def _embed(server: GatewayServer, model: str) -> None:
    body = {"model": model, "input": ["a short text", "and another one, a little longer"]}
    response = httpx.post(f"{server.url}/api/embed", json=body, timeout=120)
    response.raise_for_status()


def _models(server: GatewayServer) -> dict[str, dict[str, Any]]:
    rows = httpx.get(f"{server.url}/admin/models", timeout=30).json()["models"]
    return {row["name"]: row for row in rows}


@dataclass
class _Seen:
    measured: dict[str, int]  # each model's memory_bytes, from a start with cached graphs
    budget: int
    before: dict[str, dict[str, Any]]  # /admin/models rows after the first model's load
    after: dict[str, dict[str, Any]]  # and after the second's
    health: dict[str, Any]
    ps: dict[str, Any]
    log_tail: str


def _run_scenario(folder: Path, base_env: dict[str, str], budget_setting: str) -> _Seen:
    """Measure both models' footprints, then load them under a budget that fits one."""
    registry = write_registry(folder / "measure.yaml", _entries(), default_model=FIRST)
    # Twice: the first start compiles and writes the graph caches, which costs memory the
    # later, cached loads do not take; the eviction server loads like the second one.
    for _ in range(2):
        with GatewayServer(registry=registry, models_dir=folder, env=base_env) as server:
            _embed(server, FIRST)
            _embed(server, SECOND)
            measured = {name: row["memory_bytes"] for name, row in _models(server).items()}
    larger, smaller = max(measured.values()), min(measured.values())
    budget = larger + smaller // 2
    registry = write_registry(folder / "evict.yaml", _entries(measured), default_model=FIRST)
    env = {**base_env, budget_setting: str(budget)}
    with GatewayServer(registry=registry, models_dir=folder, env=env) as server:
        _embed(server, FIRST)
        before = _models(server)
        _embed(server, SECOND)
        after = _models(server)
        health = httpx.get(f"{server.url}/health", timeout=30).json()
        ps = httpx.get(f"{server.url}/api/ps", timeout=30).json()
        log_tail = server.log()[-3000:]
    return _Seen(measured, budget, before, after, health, ps, log_tail)


def eviction_scenario(dry_run: bool) -> dict[str, Any]:
    device = "cpu" if dry_run else "cuda"
    budget_setting = "GATEWAY_MAX_RAM" if dry_run else "GATEWAY_MAX_VRAM"
    base_env = {
        "GATEWAY_DEVICE": device,
        "GATEWAY_BACKEND": "auto",
        "GATEWAY_PRECISION": "auto",
        "GATEWAY_CACHE_BYTES": "0",
        "GATEWAY_KEEP_ALIVE": "-1",
    }
    # The models' copies and graph caches (~200 MB) go when the scenario ends.
    with tempfile.TemporaryDirectory(prefix="gpu-check-evict-") as name:
        seen = _run_scenario(Path(name), base_env, budget_setting)
    before, after = seen.before, seen.after
    problems = []
    if before[FIRST]["state"] != "loaded":
        problems.append(f"{FIRST} was not loaded before the second model")
    if after[FIRST]["state"] == "loaded" or after[SECOND]["state"] != "loaded":
        problems.append(
            f"no eviction: {FIRST} {after[FIRST]['state']}, {SECOND} {after[SECOND]['state']}"
        )
    device = (after[SECOND].get("compute") or {}).get("device")
    if not dry_run and device != "cuda":
        problems.append(f"{SECOND} runs on {device}, not cuda: {after[SECOND].get('compute')}")
    if not dry_run and not any(row.get("size_vram") for row in seen.ps.get("models", [])):
        problems.append("/api/ps reports no VRAM for the loaded model")
    return {
        "budget_setting": budget_setting,
        "budget_bytes": seen.budget,
        "measured_footprints": seen.measured,
        "states_after": {name: row["state"] for name, row in after.items()},
        "compute": after[SECOND].get("compute"),
        "memory": seen.health.get("memory"),
        "ps": seen.ps,
        "evicted": after[FIRST]["state"] != "loaded",
        "log_tail": seen.log_tail,
        "problems": problems,
    }
