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


# The port free_port() found is free only when it looked: between then and the gateway's bind
# (seconds of start-up on a busy machine) another process can take it, a listener or just an
# outgoing connection's local port. The gateway then exits at start-up with this in its log, and
# is started again on another port.
PORT_TAKEN = "address already in use"
START_ATTEMPTS = 3


def listens(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds a socket listening on loopback TCP `port` (None where /proc
    cannot tell): a 200 on the port may come from another process that took it meanwhile."""
    try:
        with open("/proc/net/tcp") as rows:  # the gateway listens on 127.0.0.1: IPv4
            listening = {
                f"socket:[{fields[9]}]"
                for fields in (row.split() for row in list(rows)[1:])
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A"
            }
        fds = os.listdir(f"/proc/{pid}/fd")
    except (OSError, IndexError, ValueError):
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in listening:
                return True
        except OSError:  # closed since the listing (the listing's own descriptor, for one)
            continue
    return False


# Settings of the exact compute mode (ONNX Runtime fp32): what in-process engines in tests use
# too, so that their vectors compare with a test server's to the last bit.
EXACT_MODE = {"GATEWAY_BACKEND": "onnxruntime", "GATEWAY_PRECISION": "fp32"}


class PortTaken(RuntimeError):
    """Another process took the gateway's port before the gateway bound it."""


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
        self.registry = registry
        self.models_dir = models_dir or REPO / "models"
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.command = list(command or [sys.executable, "-m", "gateway", "serve"])
        self.process: subprocess.Popen[bytes] | None = None
        self._pick_port()

    def _pick_port(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.registry.parent / f"gateway-{self.port}.log"

    def __enter__(self) -> GatewayServer:
        deadline = time.monotonic() + self.startup_timeout
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start(deadline)
            except PortTaken:
                if attempt == START_ATTEMPTS:
                    raise
                self._pick_port()
        raise AssertionError("unreachable")

    def _start(self, deadline: float) -> GatewayServer:
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
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log()
                if PORT_TAKEN in output:
                    raise PortTaken(f"port {self.port} was taken before the gateway bound it")
                raise RuntimeError(f"gateway exited at start-up:\n{output}")
            try:
                answered = httpx.get(self.url + "/", timeout=1).status_code == 200
            except httpx.HTTPError:
                answered = False
            if answered and listens(self.process.pid, self.port) is not False:
                return self
            time.sleep(0.1)  # not up yet, or another process answered on the port
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
