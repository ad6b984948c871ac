"""The gateway alone vs on Ray Serve with 1 and 2 model replicas, on this machine.

    .venv/bin/python -m bench.ray_scaling [--texts 1024] [--sequential 200]

Same model (all-MiniLM-L6-v2 fp32), same texts, embedding cache off, one after the other:
- throughput: all texts, 16 per request, 8 concurrent clients, /api/embed; texts/s;
- overhead: one-text requests, and GET /api/version (no model work), one at a time; the median
  latency over Serve minus the single process's is what Ray adds to a request (proxy, ingress,
  handle call to the replica, in-process ASGI call).
Ray is started locally on loopback with the machine's cores; replicas split them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.load import OLLAMA, run_load
from gateway.settings import Settings
from tests.support.corpus import generated_sentences
from tests.support.exports import export_minilm_fp32
from tests.support.models import minilm_entry, write_registry
from tests.support.server import GatewayServer, free_port

MODEL = "all-minilm-fp32"
PER_REQUEST, CLIENTS = 16, 8
RESULTS = Path(__file__).parent / "results" / "ray_scaling.json"


@dataclass
class Row:
    system: str
    texts_per_s: float
    p50_batch_ms: float
    p50_single_ms: float
    p90_single_ms: float
    p50_version_ms: float  # GET /api/version: the path through the system, no model work


def measure(system: str, url: str, texts: list[str], sequential: int) -> Row:
    run_load(url, OLLAMA, MODEL, texts[:64], clients=CLIENTS, per_request=PER_REQUEST)  # warm
    load = run_load(url, OLLAMA, MODEL, texts, clients=CLIENTS, per_request=PER_REQUEST)
    single = run_load(url, OLLAMA, MODEL, texts[:sequential], clients=1, per_request=1)
    cuts = statistics.quantiles(single.latencies_s, n=10)
    with httpx.Client(base_url=url, timeout=30) as client:
        pings = []
        for _ in range(sequential):
            sent = time.perf_counter()
            assert client.get("/api/version").status_code == 200
            pings.append(time.perf_counter() - sent)
    row = Row(
        system,
        texts_per_s=len(texts) / load.wall_s,
        p50_batch_ms=1000 * statistics.median(load.latencies_s),
        p50_single_ms=1000 * statistics.median(single.latencies_s),
        p90_single_ms=1000 * cuts[-1],
        p50_version_ms=1000 * statistics.median(pings),
    )
    print(
        f"{system:28} {row.texts_per_s:8.0f} texts/s   one text p50 {row.p50_single_ms:6.1f} ms"
        f"   /api/version p50 {row.p50_version_ms:5.1f} ms",
        flush=True,
    )
    return row


@contextmanager
def serve_on_ray(settings: Settings, replicas: int, cpus: int) -> Iterator[str]:
    from ray import serve

    from gateway.distributed.options import RayServeOptions
    from gateway.distributed.serve_app import APP_NAME, build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    options = RayServeOptions(
        min_replicas=replicas, max_replicas=replicas, replica_cpus=cpus / replicas
    )
    serve.run(build_app(settings, options).app, name=APP_NAME, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per comparison")
    parser.add_argument("--cpus", type=int, default=2, help="cores Ray may use")
    parser.add_argument(
        "--single-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the single process only, e.g. GATEWAY_THREADS=1",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import ray

    from gateway.distributed.cluster import start_local_or_join

    texts = generated_sentences(args.texts, seed=99)
    folder = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    registry = write_registry(
        folder / "registry.yaml", {MODEL: minilm_entry(export_minilm_fp32(), quantization="F32")}
    )
    env = {"GATEWAY_CACHE_BYTES": "0"}
    settings = Settings.load(
        environ={"GATEWAY_REGISTRY": str(registry), "GATEWAY_MODELS_DIR": str(folder), **env}
    )
    start_local_or_join(None, num_cpus=args.cpus + 1, include_dashboard=False, log_to_driver=False)
    comparisons: dict[str, list[tuple[Row, Row]]] = {}
    try:
        single_env = {**env, **dict(item.split("=", 1) for item in args.single_env)}
        with GatewayServer(registry=registry, models_dir=folder, env=single_env) as server:
            for replicas in (1, 2):
                label = f"Ray Serve, {replicas} replica{'s' * (replicas > 1)}"
                with serve_on_ray(settings, replicas, args.cpus) as url:
                    # Paired and alternating: the machine is shared, so its load drifts; a
                    # ratio of two runs a few seconds apart is what can be compared.
                    comparisons[label] = [
                        (
                            measure("single process", server.url, texts, args.sequential),
                            measure(label, url, texts, args.sequential),
                        )
                        for _ in range(args.rounds)
                    ]
    finally:
        ray.shutdown()
    summary: dict[str, dict[str, float]] = {}
    for label, pairs in comparisons.items():
        summary[label] = {
            "throughput_ratio_median": statistics.median(
                ray_row.texts_per_s / alone.texts_per_s for alone, ray_row in pairs
            ),
            "overhead_ms_median": statistics.median(
                ray_row.p50_single_ms - alone.p50_single_ms for alone, ray_row in pairs
            ),
            "route_overhead_ms_median": statistics.median(
                ray_row.p50_version_ms - alone.p50_version_ms for alone, ray_row in pairs
            ),
        }
        print(
            f"{label}: {summary[label]['throughput_ratio_median']:.2f}x the single process's "
            f"throughput; one-text request {summary[label]['overhead_ms_median']:+.1f} ms, "
            f"GET /api/version {summary[label]['route_overhead_ms_median']:+.1f} ms",
            flush=True,
        )
    report: dict[str, object] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_after": os.getloadavg(),
        "texts": args.texts,
        "single_env": args.single_env,
        "clients_x_per_request": f"{CLIENTS}x{PER_REQUEST}",
        "summary": summary,
        "pairs": {
            label: [[asdict(a), asdict(b)] for a, b in pairs]
            for label, pairs in comparisons.items()
        },
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
