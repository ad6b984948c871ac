"""Run the real gateway (uvicorn, `gateway serve`) in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tools.paths import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Settings of the exact compute mode (ONNX Runtime fp32): what in-process engines in tests use
# too, so that their vectors compare with a test server's to the last bit.
EXACT_MODE = {"GATEWAY_BACKEND": "onnxruntime", "GATEWAY_PRECISION": "fp32"}


class GatewayServer:
    """`with GatewayServer(registry=..., env={...}) as server: server.url`."""

    def __init__(
        self,
        *,
        registry: Path,
        models_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 180.0,  # generous: only a server that never starts fails
        command: Sequence[str] | None = None,  # instead of `python -m gateway serve`
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.registry = registry
        self.models_dir = models_dir or REPO / "models"
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.command = list(command or [sys.executable, "-m", "gateway", "serve"])
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = registry.parent / f"gateway-{self.port}.log"

    def __enter__(self) -> GatewayServer:
        env = {
            **os.environ,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_REGISTRY": str(self.registry),
            "GATEWAY_MODELS_DIR": str(self.models_dir),
            "GATEWAY_LOG_LEVEL": "info",
            # Stopping a test server need not wait for a load balancer to notice readiness.
            "GATEWAY_DRAIN_DELAY": "0",
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
            # The exact mode (ONNX Runtime fp32), which the parity tests' tolerances assume;
            # tests of the fast path pass GATEWAY_BACKEND/GATEWAY_PRECISION=auto in `env`.
            **{name: os.environ.get(name, value) for name, value in EXACT_MODE.items()},
            **self.extra_env,
        }
        # The child writes through its own copy of the descriptor; ours closes at once.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited at start-up:\n{self.log()}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gateway did not start in {self.startup_timeout}s:\n{self.log()}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)  # type: ignore[arg-type]
