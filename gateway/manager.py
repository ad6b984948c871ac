"""ModelManager: the one owner of loaded-model state; loads, unloads and keep-alive timers.

- Lazy loading: a model loads on first use; N concurrent first requests cause one load, and a
  model whose files are missing is pulled first (the shared single-flight Puller) when
  auto-pull is on.
- keep_alive as Ollama has it: the last request's value wins, 0 unloads when the request ends,
  inf (negative on the wire) keeps the model forever.
- A memory budget measured, not guessed: each load's footprint is measured (gateway.loaded) and
  gateway.budget, on plain data, decides whether a load fits and which idle model to evict. A
  model with a request in flight is never unloaded; if the busy ones leave no room, the load
  waits a bounded time and then fails with 503 naming them.

Loads, unloads and inference share the device's one worker thread, so a measured footprint is
never blurred by another model's run happening at the same moment.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from gateway import budget, metrics
from gateway.budget import GpuView, Limits, MemoryView, Resident
from gateway.errors import Busy, GatewayError, StartupFailed
from gateway.load_errors import load_error, missing_files_error, pull_error
from gateway.loaded import LoadedModel, load_model
from gateway.memory import Nvml, host_available, process_rss, release_free_heap, resolve_budget
from gateway.memory import host_total as host_memory_total
from gateway.pulling import Puller
from gateway.registry import Registry
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources import ModelStore, SourceError
from gateway.specs import ModelSpec

__all__ = ["LoadedModel", "ModelManager"]

log = logging.getLogger(__name__)


class ModelUse:
    """`async with manager.use(spec) as (model, load_seconds)`. A class: @asynccontextmanager's
    generator costs ~10 us on every request."""

    __slots__ = ("_keep_alive", "_manager", "_model", "_spec")

    def __init__(self, manager: ModelManager, spec: ModelSpec, keep_alive: float | None) -> None:
        self._manager = manager
        self._spec = spec
        self._keep_alive = keep_alive
        self._model: LoadedModel | None = None

    async def __aenter__(self) -> tuple[LoadedModel, float]:
        model, load_seconds = await self._manager._acquire(self._spec)
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = self._manager.default_keep_alive(self._spec)
        model.keep_alive = keep_alive
        self._model = model
        return model, load_seconds

    async def __aexit__(self, *exc_info: object) -> None:
        if self._model is not None:
            model, self._model = self._model, None
            await self._manager._release(model)


class ModelManager:
    def __init__(
        self,
        registry: Registry,
        store: ModelStore,
        runtime: Runtime,
        settings: Settings,
        puller: Puller,
        nvml: Nvml | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.puller = puller
        self.runtime = runtime
        self.settings = settings
        self.nvml = nvml or Nvml()
        # One worker per device: runs, loads and unloads never overlap.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device")
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Task[LoadedModel]] = {}
        self._measured: dict[str, int] = {}
        self._waiting: Counter[str] = Counter()
        self._load_lock = asyncio.Lock()
        self._idle = asyncio.Condition()
        self._room_waiters = 0  # loads waiting in _make_room for a model to go idle or away
        self.load_failures: dict[str, str] = {}

    # -- state ---------------------------------------------------------------------------------

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def get(self, name: str) -> LoadedModel | None:
        return self._loaded.get(name)

    def is_loading(self, name: str) -> bool:
        """A load of `name` is under way (its auto-pull included)."""
        return name in self._loading

    @property
    def device(self) -> str:
        return "cuda" if self.runtime.wants_cuda else "cpu"

    def default_keep_alive(self, spec: ModelSpec) -> float:
        per_model = spec.keep_alive_seconds
        return self.settings.keep_alive if per_model is None else per_model

    def limits(self) -> Limits:
        """The budgets: RAM, and VRAM when NVML can tell the GPU's size (else GPU models are
        budgeted as host memory)."""
        ram = resolve_budget(self.settings.max_ram, host_memory_total())
        gpu = self.nvml.memory() if self.device == "cuda" else None
        vram = ram if gpu is None else resolve_budget(self.settings.max_vram, gpu.total)
        return Limits(ram, vram, self.settings.max_loaded_models or None)

    def budget(self) -> int | None:
        """Bytes the loaded models may use on this device; None when uncapped."""
        return self.limits().budget(self.device)

    def residents(self) -> list[Resident]:
        return [m.resident(self._waiting[m.spec.name]) for m in self._loaded.values()]

    def used(self) -> int:
        return budget.used(self.residents(), self.device)

    def memory_view(self) -> MemoryView:
        gpu = self.nvml.memory()
        return MemoryView(
            device=self.device,
            budget_bytes=self.budget(),
            used_bytes=self.used(),
            loaded_models=len(self._loaded),
            max_loaded_models=self.settings.max_loaded_models or None,
            process_rss_bytes=process_rss(),
            host_available_bytes=host_available(),
            gpu=None if gpu is None else GpuView(gpu.total, gpu.used),
        )

    def _footprint_key(self, spec: ModelSpec) -> str:
        # Keyed by the model file, so aliases and entries sharing weights share a measurement.
        return str(self.store.path_of(spec, "model").resolve())

    def estimate(self, spec: ModelSpec) -> int:
        """Memory a load of `spec` is expected to take, before it happens."""
        measured = self._measured.get(self._footprint_key(spec))
        file_bytes = self.store.size(spec) if measured is None else 0
        return budget.estimate(measured, spec.memory_estimate_bytes, file_bytes)

    # -- use -----------------------------------------------------------------------------------

    def use(self, spec: ModelSpec, keep_alive: float | None = None) -> ModelUse:
        """Hold `spec` loaded for the duration of a request; yields (model, load seconds).

        `keep_alive` (seconds, inf for forever) replaces the model's idle time, as in Ollama:
        the last request's value wins; None means the model's default.
        """
        return ModelUse(self, spec, keep_alive)

    async def _acquire(self, spec: ModelSpec) -> tuple[LoadedModel, float]:
        started = time.perf_counter()
        while (model := self._loaded.get(spec.name)) is None:
            task = self._loading.get(spec.name)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._load(spec))
                self._loading[spec.name] = task
                task.add_done_callback(lambda _: self._loading.pop(spec.name, None))
            # While requests wait for a load, the loaded model is theirs: not evictable before
            # they wake and count themselves in flight (no await between here and there).
            self._waiting[spec.name] += 1
            try:
                await asyncio.shield(task)
            finally:
                self._waiting[spec.name] -= 1
        model.in_flight += 1
        metrics.in_flight(spec.name, model.in_flight)
        model.last_used = time.time()
        model.cancel_expiry()
        return model, time.perf_counter() - started

    async def _release(self, model: LoadedModel) -> None:
        model.in_flight -= 1
        metrics.in_flight(model.spec.name, model.in_flight)
        model.last_used = time.time()
        if model.in_flight > 0 or self._loaded.get(model.spec.name) is not model:
            return
        await self._wake_room_waiters()
        if model.keep_alive == 0:
            await self.unload(model.spec.name, reason="keep_alive 0")
        elif model.keep_alive != math.inf:
            model.expires_at = time.time() + model.keep_alive
            loop = asyncio.get_running_loop()
            model.expiry = loop.call_later(
                model.keep_alive,
                lambda: loop.create_task(self._expire(model)),
                context=contextvars.Context(),  # the expiry is no request's: no request ID
            )

    async def _expire(self, model: LoadedModel) -> None:
        if not model.busy and self._loaded.get(model.spec.name) is model:
            await self.unload(model.spec.name, reason="keep_alive expired")

    # -- load ----------------------------------------------------------------------------------

    async def _load(self, spec: ModelSpec) -> LoadedModel:
        missing = self.store.missing(spec)
        if missing and self.settings.auto_pull:
            try:
                await self.puller.pull(spec)
            except SourceError as exc:
                raise pull_error(spec.name, exc) from None  # 507 for the models folder's faults
        elif missing:
            raise missing_files_error(spec, self.store, missing)
        async with self._load_lock:  # one load at a time, like Ollama
            await self._make_room(spec)
            try:
                model = await load_model(
                    spec,
                    self.store,
                    self.runtime,
                    self.nvml,
                    self.executor,
                    self.settings,
                    keep_alive=self.default_keep_alive(spec),
                )
            except Exception as exc:
                error = load_error(spec.name, exc)
                self.load_failures[spec.name] = error.message
                metrics.model_load_failed(spec.name)
                raise error from None
            self.load_failures.pop(spec.name, None)
            # Deltas measured in a busy process vary from load to load; budget by the largest.
            key = self._footprint_key(spec)
            self._measured[key] = max(model.load_bytes, self._measured.get(key, 0))
            self._loaded[spec.name] = model
            metrics.model_loaded(spec.name, model.device, model.load_bytes, model.load_seconds)
            metrics.memory_budget(self.device, self.budget())
            await self._enforce_budget(keep=model)
        return model

    async def _make_room(self, spec: ModelSpec) -> None:
        """Evict idle models until `spec` fits (gateway.budget decides); wait if all are busy."""
        need = self.estimate(spec)
        deadline = time.monotonic() + self.settings.memory_wait
        while not budget.fits(self.residents(), need, self.device, self.limits()):
            victim = budget.choose_victim(self.residents(), now=time.time())
            if victim is not None:
                await self.unload(victim.name, reason=f"making room for {spec.name}")
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._loaded:
                raise self._no_room(spec, need)
            self._room_waiters += 1
            try:
                async with self._idle:
                    await asyncio.wait_for(self._idle.wait(), timeout=remaining)
            except TimeoutError:
                raise self._no_room(spec, need) from None
            finally:
                self._room_waiters -= 1

    async def _enforce_budget(self, keep: LoadedModel) -> None:
        """After a load measured more than estimated: evict idle models until within budget."""
        while budget.over_budget(self.residents(), self.device, self.limits()):
            victim = budget.choose_victim(
                self.residents(), now=time.time(), device=self.device, exclude=keep.spec.name
            )
            if victim is None:
                return
            await self.unload(victim.name, reason=f"over budget after loading {keep.spec.name}")

    def _no_room(self, spec: ModelSpec, need: int) -> Busy:
        limits = self.limits()
        message = budget.no_room_message(
            spec.name, need, self.residents(), limits.budget(self.device), limits.max_models
        )
        return Busy(message, retry_after=5)

    # -- unload --------------------------------------------------------------------------------

    async def unload(self, name: str, *, reason: str = "requested") -> bool:
        """Unload an idle model now. Returns False if it is not loaded or is busy."""
        model = self._loaded.get(name)
        if model is None or model.busy:
            return False
        del self._loaded[name]
        model.cancel_expiry()
        await model.batcher.close()
        # On the device thread: a run in progress finishes before its session goes away.
        await asyncio.get_running_loop().run_in_executor(self.executor, self._free, model)
        log.info("unloaded %s (%s)", name, reason)
        metrics.model_unloaded(name, model.device, reason)
        await self._wake_room_waiters()
        return True

    async def expire(self, name: str) -> None:
        """Ollama's unload request (`keep_alive: 0`, nothing to run): unload now if idle,
        else when its requests in flight end, as a request's keep_alive 0 does."""
        model = self._loaded.get(name)
        if model is None:
            return
        if model.busy:
            model.keep_alive = 0
        else:
            await self.unload(name, reason="unload requested")

    async def _wake_room_waiters(self) -> None:
        """A model went idle or away: loads waiting for room look again (skipped, as it is on
        every request, when none waits)."""
        if self._room_waiters:
            async with self._idle:
                self._idle.notify_all()

    @staticmethod
    def _free(model: LoadedModel) -> None:
        model.encoder.close()
        del model
        gc.collect()
        release_free_heap()

    async def preload(self) -> None:
        """Load the registry's `preload:` models; one that fails stops start-up (StartupFailed)."""
        for name in self.registry.preload:
            spec = self.registry.models[name]
            try:
                async with self.use(spec):
                    pass
            except GatewayError as exc:  # load errors already name the model
                raise StartupFailed(f"preload: {exc.message}") from None

    async def close(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        for name in list(self._loaded):
            self._loaded[name].in_flight = 0
            await self.unload(name, reason="shutdown")
        self.executor.shutdown(wait=True)
