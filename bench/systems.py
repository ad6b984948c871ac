"""The compared systems, each measured the same way: one workload (or one short text, repeatedly)
in, wall time, per-request latencies, CPU time and the vectors out.

- `RawOrt` (b) and `SentenceTransformers` (c) run in this process;
- `HttpSystem` drives a server subprocess -- the gateway (a), Infinity (d), the one-at-a-time
  loop (e) -- through `bench.load` with a given number of clients and texts per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import numpy as np

from bench.corpora import Workload
from bench.embedders import OrtEmbedder, StEmbedder
from bench.lean_load import run_lean_load
from bench.load import Api, run_load
from bench.servers import Gateway, ProcessServer, main_thread_cpu_seconds, tree_cpu_seconds

T = TypeVar("T")
STOP_WAIT_S = 30.0  # how long a server that stopped answering may take to exit


@dataclass(frozen=True)
class Load:
    clients: int
    per_request: int

    @property
    def label(self) -> str:
        return f"{self.clients}x{self.per_request}"

    @classmethod
    def parse(cls, text: str) -> Load:
        clients, per_request = (int(part) for part in text.lower().split("x"))
        if clients < 1 or per_request < 1:
            raise ValueError(f"a load needs at least 1 client and 1 text: {text!r}")
        return cls(clients, per_request)

    def fitted(self, texts: int) -> Load:
        """The same clients with fewer texts each when the workload cannot keep all of them busy.

        Recorded as the real shape (e.g. 8x4), so a small subset never poses as 8x32.
        """
        per_request = max(1, min(self.per_request, texts // self.clients))
        return Load(self.clients, per_request)


@dataclass
class Measured:
    wall_s: float
    vectors: np.ndarray
    latencies_s: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


def _machine_seconds() -> tuple[float, float]:
    """(CPU seconds all processes on this machine have used, seconds stolen by the host)."""
    with open("/proc/stat") as stat:
        # cpu  user nice system idle iowait irq softirq steal ...  (in USER_HZ, 100 on Linux)
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _, _, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / 100.0, steal / 100.0


@dataclass
class CpuWindow:
    """CPU time of this process, of the server process tree (and of its first thread: the event
    loop of a uvicorn server) and of everything else meanwhile."""

    server_pid: int | None
    # An HTTP server's pid, whose first thread is its event loop (uvicorn): reported apart.
    loop_pid: int | None = None
    started: float = 0.0
    own: float = 0.0
    server: float = 0.0
    # CPU of loop_pid's first thread: None without one, or when either reading failed.
    server_main: float | None = None
    machine: float = 0.0
    wall: float = 0.0
    others: float = 0.0
    steal: float = 0.0

    def __enter__(self) -> CpuWindow:
        self.started = time.perf_counter()
        self.own = time.process_time()
        self.server = tree_cpu_seconds(self.server_pid) if self.server_pid else 0.0
        self.server_main = main_thread_cpu_seconds(self.loop_pid) if self.loop_pid else None
        self.machine, self.steal = _machine_seconds()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.own = time.process_time() - self.own
        self.server = (tree_cpu_seconds(self.server_pid) - self.server) if self.server_pid else 0.0
        if self.loop_pid and self.server_main is not None:
            after = main_thread_cpu_seconds(self.loop_pid)
            spent = after - self.server_main if after is not None else None
            self.server_main = spent if spent is not None and spent >= 0 else None
        machine, steal = _machine_seconds()
        # Whatever else ran on the machine meanwhile: other people's work, i.e. contention;
        # and the time the hypervisor gave our vCPUs to other guests (contention from outside).
        self.others = max(0.0, machine - self.machine - self.own - self.server)
        self.steal = steal - self.steal


class System:
    """A row of the table: `key` picks it on the command line, `label` names it in the table."""

    key: str
    label: str
    http: bool = False
    server_pid: int | None = None

    def measure(self, workload: Workload, load: Load | None) -> Measured:
        raise NotImplementedError

    def single(self, text: str, times: int) -> list[float]:
        """Latencies (s) of embedding one short text alone, `times` times in a row."""
        raise NotImplementedError


class SortedBatchesSystem(System):
    """An in-process embedder over ideal batches (sorted by length): raw ORT, raw OpenVINO."""

    def __init__(self, embedder: OrtEmbedder, batch_size: int) -> None:
        self.embedder = embedder
        self.batch_size = batch_size

    def measure(self, workload: Workload, load: Load | None) -> Measured:
        started = time.perf_counter()
        vectors, padded = self.embedder.embed_sorted(workload.texts, self.batch_size)
        wall = time.perf_counter() - started
        return Measured(wall, vectors, extra={"padding_ratio": padded / workload.total_tokens})

    def single(self, text: str, times: int) -> list[float]:
        out = []
        for _ in range(times):
            started = time.perf_counter()
            self.embedder.run(self.embedder.tokenize([text]))
            out.append(time.perf_counter() - started)
        return out


class RawOrt(SortedBatchesSystem):
    key = "raw"
    label = "(b) raw ORT, sorted batches"

    def __init__(self, embedder: OrtEmbedder, batch_size: int) -> None:
        super().__init__(embedder, batch_size)
        self.label = f"(b) raw ORT in-process, sorted bs{batch_size}"


class SentenceTransformers(System):
    key = "st"
    label = "(c) sentence-transformers (torch) bs32"

    def __init__(self, embedder: StEmbedder) -> None:
        self.embedder = embedder

    def measure(self, workload: Workload, load: Load | None) -> Measured:
        started = time.perf_counter()
        vectors = self.embedder.embed(workload.texts, batch_size=32)
        return Measured(time.perf_counter() - started, vectors)

    def single(self, text: str, times: int) -> list[float]:
        out = []
        for _ in range(times):
            started = time.perf_counter()
            self.embedder.embed([text])
            out.append(time.perf_counter() - started)
        return out


class HttpSystem(System):
    http = True

    def __init__(
        self,
        key: str,
        label: str,
        server: Gateway | ProcessServer,
        api: Api,
        model: str,
        *,
        lean_client: bool = False,
    ) -> None:
        self.key = key
        self.label = label
        self.server = server
        self.api = api
        self.model = model
        # bench.lean_load instead of aiohttp: the server's cost without most of the client's.
        self.lean_client = lean_client
        self.restarts: list[str] = []

    @property
    def server_pid(self) -> int | None:  # type: ignore[override]
        return self.server.pid

    def ensure_running(self) -> None:
        """Restart a server that has gone (and warm it up), noting it in `self.restarts`."""
        code = self.server.exit_code()
        if code is None:
            return
        self.restarts.append(f"{time.strftime('%H:%M:%S')} {self.label}: exited ({code})")
        self.server.stop()
        self.server.start()
        # The gateway loads models on first use: that must not land in a measurement.
        self._load([f"warm-up text number {i}" for i in range(16)], Load(8, 2))

    def _load(self, texts: Sequence[str], load: Load):
        result = (run_lean_load if self.lean_client else run_load)(
            self.server.url,
            self.api,
            self.model,
            texts,
            clients=load.clients,
            per_request=load.per_request,
        )
        return result

    def _retrying(self, action: Callable[[], T]) -> T:
        """`action()`, once more after a restart if the server went away during it."""
        self.ensure_running()
        try:
            return action()
        except httpx.TransportError:
            # A stopped server refuses connections a while before its process exits.
            deadline = time.monotonic() + STOP_WAIT_S
            while self.server.exit_code() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.server.exit_code() is None:
                raise
            self.ensure_running()
            return action()

    def measure(self, workload: Workload, load: Load | None) -> Measured:
        assert load is not None
        return self._retrying(lambda: self._measure(workload, load))

    def _measure(self, workload: Workload, load: Load) -> Measured:
        result = self._load(workload.texts, load)
        extra: dict[str, float] = {"server_tokens": result.server_tokens}
        return Measured(result.wall_s, result.vectors, result.latencies_s, extra=extra)

    def single(self, text: str, times: int) -> list[float]:
        return self._retrying(lambda: self._load([text] * times, Load(1, 1)).latencies_s)


class GatewaySystem(HttpSystem):
    """The gateway, plus its batcher's view of each measurement (batches, items, padding)."""

    def __init__(
        self,
        key: str,
        label: str,
        server: Gateway,
        api: Api,
        model: str,
        *,
        lean_client: bool = False,
    ) -> None:
        super().__init__(key, label, server, api, model, lean_client=lean_client)
        self.gateway = server

    def _measure(self, workload: Workload, load: Load) -> Measured:
        before = self.gateway.stats(self.model)
        measured = super()._measure(workload, load)
        after = self.gateway.stats(self.model)
        batches = after["batches"] - before["batches"]
        items = after["items"] - before["items"]
        # The batcher's exact token counters: the window's ratio is their difference's (the
        # rounded cumulative padding_ratio, scaled back up, drifted below 1 on long runs).
        padded = after["padded_tokens"] - before["padded_tokens"]
        real = after["real_tokens"] - before["real_tokens"]
        measured.extra.update(
            batches=batches,
            items=items,
            mean_batch=items / batches if batches else 0.0,
            padding_ratio=padded / real if real else 0.0,
            padding_ratio_cumulative=after["padding_ratio"],
        )
        return measured
