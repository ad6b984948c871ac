"""The systems of one bench run, started per model: in-process rows, the gateway under each
compute setting, and the peers (Infinity, fastembed) from their own venvs.

Servers are appended to the caller's `running` list as they start, so the caller can stop them
whatever fails; a peer that cannot be installed or started is recorded, not fatal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.load import INFINITY_FLOAT, OLLAMA, OPENAI_BASE64
from bench.models import BenchModel
from bench.systems import GatewaySystem, HttpSystem, RawOrt, SentenceTransformers, System

ALL_SYSTEMS = (
    "raw",
    "raw-ov-bf16",
    "raw-ov-fp32",
    "st",
    "fastembed",
    "gateway",
    "gateway-lean",
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


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Lineup:
    """Which systems a run has, and the peers' venvs (set up once per run)."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.infinity: dict[str, Any] = {"requested": "infinity" in args.systems}
        self.fastembed: dict[str, Any] = {"requested": "fastembed" in args.systems}

    @staticmethod
    def peer_view(peer: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in peer.items() if k != "python"}

    def prepare_peers(self) -> None:
        self.prepare_infinity()
        self.prepare_fastembed()

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
        if {"gateway", "gateway-lean", "gateway-openai"} & set(wanted):
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
            if "gateway-lean" in wanted:
                # The same server, loaded by a client that costs the shared cores far less.
                lean = "(a) gateway /api/embed, auto, lean client"
                rows.append(
                    GatewaySystem(
                        "gateway-lean", lean, gateway, OLLAMA, model.served_name, lean_client=True
                    )
                )
            if "gateway-openai" in wanted:
                label = "(a) gateway /v1/embeddings base64"
                rows.append(
                    GatewaySystem(
                        "gateway-openai", label, gateway, OPENAI_BASE64, model.served_name
                    )
                )
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
