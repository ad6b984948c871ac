"""What the server's own code costs per request, apart from inference.

`python -m bench.app_cost` sends POST /api/embed with one short text the embedding cache already
holds, so no inference runs, and reports:

- in-process: the ASGI app as `gateway serve` runs it (drain, request observer, fast lane,
  service, cache, answer) called directly, one request at a time, no socket: us per request;
- over loopback, 64 lean clients (bench/lean_load.py): the server process's CPU per request
  (user + system, from /proc) and requests/s;
- over loopback, one lean client: the p50 round trip.

For scale, the loopback figures are repeated for uvicorn (uvloop, httptools) serving a trivial
ASGI app that answers a canned body of the same length: what any app on this stack pays. The
difference is the gateway's own Python per request, the part of issue 13's HTTP overhead that is
ours to cut (notes of stop 24).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.lean_load import run_lean_load
from bench.load import OLLAMA
from bench.models import load_model
from bench.servers import Gateway
from tools.gateway_server import free_port

TEXT = "The quick brown fox jumps over the lazy sleeping dog."
ANSWER_FILE_ENV = "APP_COST_ANSWER_FILE"
Message = MutableMapping[str, Any]


async def canned_app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """The trivial app: reads the body, answers the bytes of the gateway's own answer."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    body = _canned_answer()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@functools.cache
def _canned_answer() -> bytes:
    return Path(os.environ[ANSWER_FILE_ENV]).read_bytes()


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loopback(url: str, pid: int, model: str, requests: int) -> dict[str, float]:
    """Server CPU per request and requests/s at 64 clients; p50 at one client."""
    run_lean_load(url, OLLAMA, model, [TEXT] * 2_000, clients=64, per_request=1)  # warm
    before = process_cpu_seconds(pid)
    busy = run_lean_load(url, OLLAMA, model, [TEXT] * requests, clients=64, per_request=1)
    cpu_us = (process_cpu_seconds(pid) - before) / requests * 1e6
    alone = run_lean_load(url, OLLAMA, model, [TEXT] * 1_000, clients=1, per_request=1)
    return {
        "server_cpu_us_per_request_64x1": round(cpu_us, 1),
        "requests_per_s_64x1": round(requests / busy.wall_s, 1),
        "p50_us_1x1": round(statistics.median(alone.latencies_s) * 1e6, 1),
    }


async def in_process(env: dict[str, str], body: bytes, requests: int) -> float:
    """Best of three rounds, us per request, of the app called directly."""
    from gateway.api.app import create_app
    from gateway.api.draining import Drain
    from gateway.settings import Settings

    app = create_app(Settings.load(environ=env))
    asgi = Drain().wrap(app)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/embed",
        "raw_path": b"/api/embed",
        "root_path": "",
        "query_string": b"",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 11434),
    }
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    statuses: list[int] = []

    async def one() -> None:
        taken = False

        async def receive() -> Message:
            nonlocal taken
            if not taken:
                taken = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never  # no disconnect: the client stays
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await asgi({**scope, "headers": list(headers)}, receive, send)

    async with app.lifespan():
        for _ in range(300):  # load the model, fill the cache, warm up
            await one()
        rounds = []
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(requests):
                await one()
            rounds.append((time.perf_counter() - started) / requests * 1e6)
    if set(statuses) != {200}:
        raise SystemExit(f"the in-process app answered {sorted(set(statuses))}")
    return round(min(rounds), 1)


def canned_server(answer: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.app_cost:canned_app", "--port", str(port)]
    command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    command += ["--log-level", "warning"]
    env = {**os.environ, ANSWER_FILE_ENV: str(answer)}
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.post(url, content=b"{}", timeout=1)
            return url, process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the canned uvicorn app did not start")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per round (%(default)s)")
    args = parser.parse_args(argv)
    model = load_model("minilm")
    workdir = Path(tempfile.mkdtemp(prefix="app-cost-"))
    gateway = Gateway(model, workdir, {"GATEWAY_BACKEND": "auto", "GATEWAY_PRECISION": "auto"})
    gateway.start()
    try:
        answer = httpx.post(
            gateway.url + "/api/embed", json={"model": model.served_name, "input": TEXT}
        )
        answer.raise_for_status()
        served = loopback(gateway.url, gateway.pid, model.served_name, args.requests)
        # The loopback server's settings, so both figures measure the same configuration.
        env = {
            **os.environ,
            "GATEWAY_REGISTRY": str(gateway.server.registry),
            "GATEWAY_MODELS_DIR": str(gateway.server.models_dir),
            "GATEWAY_KEEP_ALIVE": "-1",
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_BACKEND": "auto",
            "GATEWAY_PRECISION": "auto",
        }
    finally:
        gateway.stop()
    body = OLLAMA.body(model.served_name, [TEXT])
    app_us = uvloop.run(in_process(env, body, args.requests))
    saved = workdir / "answer.json"
    saved.write_bytes(answer.content)
    url, process = canned_server(saved)
    try:
        canned = loopback(url, process.pid, model.served_name, args.requests)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"one cached text to /api/embed; answer {len(answer.content):,} bytes")
    print(f"  gateway app in-process: {app_us} us per request")
    for name, figures in (("gateway over loopback", served), ("uvicorn, canned app", canned)):
        print(f"  {name}: " + ", ".join(f"{k} {v:,}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
