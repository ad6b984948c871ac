"""Memory probes: host RAM of this process and of the machine, GPU memory through NVML.

NVML is optional: without a GPU, a driver, or nvidia-ml-py's library, every GPU probe reports
"unavailable" and the gateway budgets host memory only.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from gateway.units import parse_bytes

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_rss() -> int:
    """Resident memory of this process, in bytes."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:  # not Linux: ru_maxrss is a peak, but better than nothing
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def process_anonymous() -> int:
    """Anonymous resident memory of this process (heap, arenas), in bytes.

    Model footprints are measured with this rather than RSS: RSS also counts shared libraries
    paged in on first use, which would be charged to whichever model happened to load first.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return process_rss()


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values


def _cgroup_limit() -> int | None:
    """The container's memory limit, when one is set (cgroup v2 or v1)."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                raw = handle.read().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:
            return int(raw)
    return None


def host_total() -> int:
    total = _meminfo().get("MemTotal", 0)
    limit = _cgroup_limit()
    return min(total, limit) if limit and total else (limit or total)


def host_available() -> int:
    return _meminfo().get("MemAvailable", 0)


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, and RSS never falls)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(frozen=True)
class GpuMemory:
    total: int
    used: int
    used_by_this_process: int | None


class Nvml:
    """Lazy, failure-tolerant NVML access (nvidia-ml-py)."""

    def __init__(self, device_index: int = 0) -> None:
        self.device_index = device_index
        self._lock = threading.Lock()
        self._handle: object | None = None
        self._failed = False

    def _device(self) -> object | None:
        with self._lock:
            if self._handle is None and not self._failed:
                try:
                    import pynvml

                    pynvml.nvmlInit()
                    self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
                except Exception as exc:  # library missing, no driver, no device
                    self._failed = True
                    log.info("NVML unavailable (%s); budgeting host memory only", exc)
            return self._handle

    def memory(self) -> GpuMemory | None:
        handle = self._device()
        if handle is None:
            return None
        import pynvml

        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            mine: int | None = None
            try:
                for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid == os.getpid() and proc.usedGpuMemory is not None:
                        mine = int(proc.usedGpuMemory)
            except pynvml.NVMLError:
                mine = None  # per-process accounting is not available in every container
            return GpuMemory(int(info.total), int(info.used), mine)
        except pynvml.NVMLError as exc:
            log.warning("NVML query failed: %s", exc)
            return None


@dataclass(frozen=True)
class ArenaReading:
    """Where a model's runtime arena grows, read before and after a run of a new shape."""

    read: Callable[[], int | None]  # None: this reading failed (no growth is charged)
    # Host outputs sit in RSS until their requests finish; they are not the arena's.
    holds_outputs: bool


def arena_reading(device: str, nvml: Nvml) -> ArenaReading | None:
    """Anonymous RSS on the CPU. On CUDA, the device memory NVML reports for this process (the
    whole device's used memory where per-process accounting is unavailable, as in some
    containers); outputs come back to the host, so none of them is in it. None when NVML cannot
    read the GPU: growth then goes unmeasured rather than guessed."""
    if device == "cpu":
        return ArenaReading(process_anonymous, holds_outputs=True)
    if nvml.memory() is None:
        return None

    def device_memory() -> int | None:
        view = nvml.memory()
        if view is None:  # a failed query: the run is not charged (a 0 would charge it all)
            return None
        return view.used if view.used_by_this_process is None else view.used_by_this_process

    return ArenaReading(device_memory, holds_outputs=False)


def resolve_budget(raw: str | None, total: int) -> int | None:
    """A budget setting ("6GiB", "80%", bytes) against a device's total; None means no cap."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw.endswith("%"):
        return int(total * float(raw[:-1]) / 100)
    return parse_bytes(raw)


class GrowthMeter:
    """How much of a run's anonymous-RSS growth to charge to its model's arena. Used on the
    device thread only (runs, loads and unloads share it), one per device.

    RSS is the whole process's: memory that other threads (request bodies, tokenizing) hold
    when a run ends reads as growth too, and a raw delta charged per new shape adds that noise
    up once per shape, for good. A runtime's arena only grows while its model is loaded, so its
    growth lifts RSS to a new high, while other threads' memory comes and goes. Charging a run
    only what RSS rises above the highest reading so far charges such transient memory at most
    once: the total stays within about one burst of the arena's real growth, in either
    direction, however many shapes run. An unload lowers RSS for real, so it resets the mark
    (else later growth up to the old high would go uncharged). One per reading: host RSS and a
    GPU's memory are different scales, and a mark from one would misjudge the other.
    """

    def __init__(self) -> None:
        self._high: int | None = None

    def charge(self, before: int, after: int) -> int:
        """Bytes to charge for a run that read `before` and `after` (outputs excluded)."""
        high = before if self._high is None else self._high
        self._high = max(high, after)
        return min(after - before, after - high)

    def reset(self) -> None:
        self._high = None
