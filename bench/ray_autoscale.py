"""Watch Ray Serve add a model replica when the queue grows.

    .venv/bin/python -m bench.ray_autoscale [--seconds 75] [--clients 8]

One model replica (min 1, max 2, target 2 requests in flight or queued per replica), then
`--clients` concurrent clients for `--seconds`; prints the replica states every 5 s. Serve's
default upscale delay is 30 s, so the second replica appears after about that much load.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from ray import serve

from bench.load import OLLAMA, run_load
from gateway.distributed.cluster import start_local_or_join
from gateway.distributed.options import RayServeOptions
from gateway.distributed.serve_app import APP_NAME, MODELS_DEPLOYMENT, build_app
from gateway.settings import Settings
from tests.support.corpus import generated_sentences
from tests.support.exports import export_minilm_fp32
from tests.support.models import minilm_entry, write_registry
from tests.support.server import free_port

MODEL = "all-minilm-fp32"


def replica_states() -> dict[str, int]:
    status = serve.status().applications[APP_NAME].deployments[MODELS_DEPLOYMENT]
    return {str(state): count for state, count in status.replica_states.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=75)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ray-autoscale-"))
    registry = write_registry(
        folder / "registry.yaml", {MODEL: minilm_entry(export_minilm_fp32(), quantization="F32")}
    )
    settings = Settings.load(
        environ={"GATEWAY_REGISTRY": str(registry), "GATEWAY_MODELS_DIR": str(folder)}
    )
    start_local_or_join(None, num_cpus=3, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    options = RayServeOptions(min_replicas=1, max_replicas=2, target_ongoing_requests=2)
    serve.run(build_app(settings, options).app, name=APP_NAME, route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    texts = generated_sentences(256, seed=3)
    stop = time.monotonic() + args.seconds

    def load() -> None:
        while time.monotonic() < stop:
            run_load(url, OLLAMA, MODEL, texts, clients=args.clients, per_request=4)

    began = time.monotonic()
    loader = threading.Thread(target=load)
    loader.start()
    try:
        while loader.is_alive():
            print(f"t={time.monotonic() - began:5.1f}s replicas {replica_states()}", flush=True)
            loader.join(timeout=5)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
