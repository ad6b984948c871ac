"""Room on the device for a load: the budgets, what a load is expected to take, and making room.

gateway.budget decides on plain data (does a load fit, which idle model goes); this applies it to
the loaded models: it evicts idle ones until a load fits, waits a bounded time for busy ones to go
idle, and after a load that measured more than expected evicts until within budget again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway import budget
from gateway.budget import Limits, Resident
from gateway.errors import Busy, GatewayError
from gateway.load_errors import out_of_memory
from gateway.memory import Nvml, resolve_budget
from gateway.memory import host_total as host_memory_total
from gateway.settings import Settings
from gateway.sources import ModelStore
from gateway.specs import ModelSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

# Unloads a model by name if it is idle ("reason" is logged); False if it is not loaded or busy.
Unload = Callable[[str, str], Awaitable[bool]]


class Room:
    def __init__(
        self,
        store: ModelStore,
        settings: Settings,
        nvml: Nvml,
        device: str,
        residents: Callable[[], list[Resident]],
        unload: Unload,
    ) -> None:
        self.store = store
        self.settings = settings
        self.nvml = nvml
        self.device = device
        self.residents = residents
        self.unload = unload
        self._measured: dict[str, int] = {}
        self._idle = asyncio.Condition()
        self._waiters = 0  # loads waiting for a model to go idle or away
        # Devices left over budget while other models were busy: why (for the unload's log line).
        self._left_over: dict[str, str] = {}

    def limits(self) -> Limits:
        """The budgets: RAM, and VRAM when NVML can tell the GPU's size (else GPU models are
        budgeted as host memory)."""
        ram = resolve_budget(self.settings.max_ram, host_memory_total())
        gpu = self.nvml.memory() if self.device == "cuda" else None
        vram = ram if gpu is None else resolve_budget(self.settings.max_vram, gpu.total)
        return Limits(ram, vram, self.settings.max_loaded_models or None)

    def _footprint_key(self, spec: ModelSpec) -> str:
        # Keyed by the model file, so aliases and entries sharing weights share a measurement.
        return str(self.store.path_of(spec, "model").resolve())

    def estimate(self, spec: ModelSpec) -> int:
        """Memory a load of `spec` is expected to take, before it happens."""
        measured = self._measured.get(self._footprint_key(spec))
        file_bytes = self.store.size(spec) if measured is None else 0
        return budget.estimate(measured, spec.memory_estimate_bytes, file_bytes)

    def measured(self, spec: ModelSpec, load_bytes: int) -> None:
        # Deltas measured in a busy process vary from load to load; budget by the largest.
        key = self._footprint_key(spec)
        self._measured[key] = max(load_bytes, self._measured.get(key, 0))

    async def make(
        self,
        spec: ModelSpec,
        refuse: GatewayError | None = None,
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        """Evict idle models until `spec` fits (gateway.budget decides); wait if all are busy.
        With `refuse`, evict nothing: raise it if `spec` does not fit as things are. Once
        `wanted()` is false (every request waiting for the load left while it waited for room),
        evict nothing either: give up with Busy."""
        need = self.estimate(spec)
        deadline = time.monotonic() + self.settings.memory_wait
        while not budget.fits(self.residents(), need, self.device, self.limits()):
            if refuse is not None:
                raise refuse
            if not wanted():
                raise Busy(f"load of {spec.name} given up: no request waits for it")
            victim = budget.choose_victim(self.residents(), now=time.time())
            if victim is not None:
                await self.unload(victim.name, f"making room for {spec.name}")
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.residents():
                raise self._no_room(spec, need)
            self._waiters += 1
            try:
                async with self._idle:
                    await asyncio.wait_for(self._idle.wait(), timeout=remaining)
            except TimeoutError:
                raise self._no_room(spec, need) from None
            finally:
                self._waiters -= 1

    async def retry_out_of_memory(self, name: str, load: Callable[[], Awaitable[T]]) -> T:
        """`load()`; if it ran out of memory (the budget's estimate was short, or memory outside
        the budget was taken), evict every idle model but `name` and load once more."""
        try:
            return await load()
        except Exception as exc:
            if not out_of_memory(exc):
                raise
            evicted = 0
            while victim := budget.choose_victim(self.residents(), now=time.time(), exclude=name):
                if not await self.unload(victim.name, f"out of memory loading {name}"):
                    break  # taken by a request meanwhile: never pick the same one forever
                evicted += 1
            if not evicted:
                raise
            log.warning("model %s ran out of memory loading: unloaded %d idle, loading again",
                        name, evicted)  # fmt: skip
        return await load()

    async def enforce_budget(
        self, keep: str, device: str | None = None, cause: str = "loading"
    ) -> None:
        """After a load measured more than estimated, or `keep`'s arena grew: evict idle models
        until `device`'s budget (`keep`'s, where it really runs; default this manager's) is
        kept. `cause` words the unload's log line: over budget after {cause} {keep}."""
        device = device or self.device
        await self._evict_while_over(keep, device, f"over budget after {cause} {keep}")

    async def enforce_left_over(self, keep: str, device: str) -> None:
        """`keep` went idle: if its device was left over budget when no model could go (all
        the others were busy), evict idle ones now. Cheap when nothing was left over."""
        reason = self._left_over.get(device)
        if reason is not None:
            await self._evict_while_over(keep, device, reason)

    async def _evict_while_over(self, keep: str, device: str, reason: str) -> None:
        while budget.over_budget(self.residents(), device, self.limits()):
            victim = budget.choose_victim(
                self.residents(), now=time.time(), device=device, exclude=keep
            )
            if victim is None:
                # Models busy now may go once idle: the next release looks again. (Alone, or
                # beside pinned models only, nothing would change: no release pays for a look.)
                if any(
                    r.busy and not r.pinned and r.name != keep and r.device == device
                    for r in self.residents()
                ):
                    self._left_over[device] = reason
                else:
                    self._left_over.pop(device, None)
                return
            await self.unload(victim.name, reason)
        self._left_over.pop(device, None)

    def _no_room(self, spec: ModelSpec, need: int) -> Busy:
        limits = self.limits()
        message = budget.no_room_message(
            spec.name, need, self.residents(), limits.budget(self.device), limits.max_models
        )
        return Busy(message, retry_after=5)

    @property
    def waited_for(self) -> bool:
        return self._waiters > 0

    async def wake_waiters(self) -> None:
        """A model went idle or away: loads waiting for room look again (skipped, as it is on
        every request, when none waits)."""
        if self._waiters:
            async with self._idle:
                self._idle.notify_all()
