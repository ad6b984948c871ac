"""The HTTP systems as subprocesses on free loopback ports, and their CPU time.

Every server is its own process on this machine's cores, and the load generator (this process)
runs beside it on the same cores: client and server compete for the CPU the same way for every
HTTP system, as they would on a one-box deployment.

All servers offer start(), stop() and exit_code(): on a shared machine a server can be ended
from outside (another session cleaning up "its" servers by name), and the bench then restarts
it rather than losing the rest of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.models import CACHE, MAX_TOKENS, REPO, BenchModel
from tools.gateway_server import GatewayServer, free_port
from tools.models import minilm_entry, write_registry

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its ")" is space-separated.
    return raw[raw.rindex(")") + 2 :].split()


def main_thread_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of a process's first thread (a uvicorn server's event loop), None when it is
    gone. From schedstat (nanoseconds): /stat's 10 ms ticks are too coarse for a thread that
    runs ~0.1 ms per request."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields is not None:
            # utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
            total += (int(fields[11]) + int(fields[12])) / _TICKS
        todo.extend(children.get(pid, []))
    return total


class ProcessServer:
    """A server command started on a free port; ready once `health` answers 200."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        port: int,
        health: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
        startup_timeout: float = 180.0,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.url = f"http://127.0.0.1:{port}"
        self.health = health
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + self.health, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} did not start in {self.startup_timeout}s")

    def exit_code(self) -> int | None:
        """None while the server runs; its exit status once it has gone."""
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Gateway:
    """The real `gateway serve` (tools.gateway_server.GatewayServer) serving one local export."""

    def __init__(
        self,
        model: BenchModel,
        workdir: Path,
        env: Mapping[str, str],
        command: Sequence[str] | None = None,
    ) -> None:
        entry = minilm_entry(
            model.folder,
            dim=model.dim,
            max_tokens=MAX_TOKENS,
            quantization="F32",
            parameter_size=model.parameter_size,
            description=model.description,
        )
        registry = write_registry(
            workdir / f"registry-{model.key}.yaml", {model.served_name: entry}
        )
        # Keep the model loaded for the whole run, and keep the log quiet: logging is CPU too.
        settings = {"GATEWAY_KEEP_ALIVE": "-1", "GATEWAY_LOG_LEVEL": "warning", **env}
        # Its own models dir: the gateway caches optimized graphs there between runs.
        self.server = GatewayServer(
            registry=registry,
            models_dir=CACHE / "gateway-models",
            env=settings,
            startup_timeout=120,
            command=command,
        )
        self.name = "gateway"

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def start(self) -> None:
        self.server.__enter__()

    def exit_code(self) -> int | None:
        process = self.server.process
        return None if process is None else process.poll()

    def stop(self) -> None:
        self.server.__exit__(None, None, None)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.server.log().splitlines()[-lines:])

    def row(self, model: str) -> dict[str, Any]:
        """The model's row of GET /admin/models (its compute placement, memory, counters)."""
        rows = httpx.get(self.url + "/admin/models", timeout=30).json()["models"]
        row: dict[str, Any] = next(r for r in rows if r["name"] == model)
        return row

    def stats(self, model: str) -> dict[str, Any]:
        """The batcher's counters (cumulative since the model loaded) and where the model
        runs (`compute`: backend, device, precision and why, as `auto` chose them)."""
        row = self.row(model)
        keys = ("batches", "items", "padding_ratio", "real_tokens", "padded_tokens", "busy_seconds")
        return {**{k: row.get(k, 0) for k in keys}, "compute": row.get("compute", {})}


def loop_server(model: BenchModel, workdir: Path) -> ProcessServer:
    port = free_port()
    command = [
        sys.executable, "-m", "bench.loop_server",
        "--onnx", str(model.onnx), "--tokenizer", str(model.tokenizer),
        "--name", model.served_name, "--port", str(port),
    ]  # fmt: skip
    log = workdir / f"loop-{model.key}.log"
    return ProcessServer("one-at-a-time", command, port=port, health="/", log_path=log)


def infinity_server(model: BenchModel, python: Path, workdir: Path) -> ProcessServer:
    """Infinity's torch engine on the sentence-transformers folder, as its docs deploy on CPU.

    - `--pooling-method mean`: its `auto` picks CLS for some folders;
    - `--no-vector-disk-cache`: by default it caches results on disk, and repeated reps of the
      same inputs would then be answered from the cache;
    - `--no-model-warmup`: the bench warms every system up itself, the same way;
    - `--log-level warning`: no access log, as the gateway has none.
    """
    port = free_port()
    command = [
        str(python.parent / "infinity_emb"), "v2",
        "--model-id", str(model.st_folder), "--served-model-name", model.served_name,
        "--engine", "torch", "--device", "cpu", "--batch-size", "32",
        "--pooling-method", "mean", "--no-vector-disk-cache", "--no-model-warmup",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    env = {"HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    log = workdir / f"infinity-{model.key}.log"
    return ProcessServer(
        "infinity", command, port=port, health="/models", log_path=log, env=env, cwd=workdir
    )
