"""Memory accounting and the choice of what to evict, on plain data.

No asyncio, no ONNX: the manager describes its loaded models as `Resident`s and its limits as
`Limits`, and asks whether a load fits, which model to evict, and how to word a refusal. The
rules:
- each model counts against the budget of the device it runs on (RAM for CPU models, VRAM for
  GPU ones); a device with nothing loaded takes any one model, however large;
- `max_models` (when set) caps how many models are loaded at once, across devices;
- a busy model (requests in flight, or waiting for it to load) and a pinned one are never
  evicted; among the rest, one whose keep-alive has run out goes first, then the least
  recently used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

# Before the first measurement and without a registry estimate, a model is assumed to need this
# many times its files' size (weights, plus folded constants and the runtime's arena).
FILE_SIZE_FACTOR = 2.5
MIB = 2**20


@dataclass(frozen=True)
class Resident:
    """A loaded model, as far as memory is concerned."""

    name: str
    bytes: int
    last_used: float
    device: str = "cpu"
    pinned: bool = False
    in_flight: int = 0
    waiting: int = 0  # requests waiting for it to finish loading
    expires_at: float | None = None  # when keep-alive unloads it; None: busy or forever

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or self.waiting > 0


@dataclass(frozen=True)
class Limits:
    ram_bytes: int | None  # None: uncapped
    vram_bytes: int | None
    max_models: int | None = None  # None or 0: no limit

    def budget(self, device: str) -> int | None:
        return self.vram_bytes if device == "cuda" else self.ram_bytes


def used(residents: Sequence[Resident], device: str) -> int:
    return sum(r.bytes for r in residents if r.device == device)


def fits(residents: Sequence[Resident], need: int, device: str, limits: Limits) -> bool:
    """Whether a model needing `need` bytes on `device` can load beside `residents`."""
    if limits.max_models and len(residents) >= limits.max_models:
        return False
    budget = limits.budget(device)
    if budget is None or not any(r.device == device for r in residents):
        return True
    return used(residents, device) + need <= budget


def over_budget(residents: Sequence[Resident], device: str, limits: Limits) -> bool:
    budget = limits.budget(device)
    return budget is not None and used(residents, device) > budget


def choose_victim(
    residents: Sequence[Resident],
    *,
    now: float,
    device: str | None = None,
    exclude: str | None = None,
) -> Resident | None:
    """The model to evict next (on `device`, when given), or None if none may go."""
    candidates = [
        r
        for r in residents
        if not r.busy
        and not r.pinned
        and r.name != exclude
        and (device is None or r.device == device)
    ]
    return min(candidates, key=lambda r: (not _expired(r, now), r.last_used), default=None)


def _expired(resident: Resident, now: float) -> bool:
    return resident.expires_at is not None and resident.expires_at <= now


def estimate(measured: int | None, registry_estimate: int | None, file_bytes: int) -> int:
    """Memory a load is expected to take: the largest measured so far, else the registry's
    estimate, else a multiple of the files' size."""
    if measured is not None:
        return measured
    if registry_estimate is not None:
        return registry_estimate
    return int(file_bytes * FILE_SIZE_FACTOR)


def no_room_message(
    name: str,
    need: int,
    residents: Sequence[Resident],
    budget: int | None,
    max_models: int | None = None,
) -> str:
    """Why `name` cannot load now: the loaded-model limit when that is what is reached (memory
    may be plentiful), else memory; either way, the models holding the room."""
    holders = ", ".join(
        f"{r.name} ({r.bytes / MIB:.0f} MiB, "
        f"{'pinned' if r.pinned else f'{r.in_flight} in flight'})"
        for r in residents
    )
    if max_models and len(residents) >= max_models:
        return (
            f"cannot load {name}: {len(residents)} models are loaded, the limit "
            f"(GATEWAY_MAX_LOADED_MODELS) is {max_models}, and none can be unloaded; "
            f"held by: {holders}"
        )
    cap = "no cap" if budget is None else f"{budget / MIB:.0f} MiB"
    return (
        f"not enough memory to load {name} (needs about {need / MIB:.0f} MiB, "
        f"budget {cap}); held by: {holders}"
    )


class GpuView(msgspec.Struct):
    total_bytes: int
    used_bytes: int


class MemoryView(msgspec.Struct):
    """The budget and what is in it, for /health and /admin/models."""

    device: str
    budget_bytes: int | None
    used_bytes: int
    loaded_models: int
    max_loaded_models: int | None
    process_rss_bytes: int
    host_available_bytes: int
    gpu: GpuView | None
