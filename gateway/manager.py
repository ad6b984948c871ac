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
import itertools
import logging
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from gateway import budget, metrics
from gateway.budget import GpuView, Limits, MemoryView, Resident
from gateway.errors import Busy, GatewayError, StartupFailed
from gateway.load_errors import load_error, missing_files_error, out_of_memory, pull_error
from gateway.load_failures import LoadFailures, files_state
from gateway.loaded import LoadedModel, load_model
from gateway.memory import GrowthMeter, Nvml, host_available, process_rss, release_free_heap
from gateway.model_use import ModelUse
from gateway.pulling import Puller
from gateway.registry import Registry
from gateway.room import Room
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources import ModelStore, SourceError
from gateway.specs import ModelSpec

__all__ = ["LoadedModel", "ModelManager"]

log = logging.getLogger(__name__)


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
        # Arena growth per new batch shape, one meter per memory (host RSS, the GPU's).
        self.growth = {"cpu": GrowthMeter(), "cuda": GrowthMeter()}
        self.arrivals = itertools.count()  # requests in order of arrival: whose keep_alive wins
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Task[LoadedModel]] = {}
        self._waiting: Counter[str] = Counter()
        self._load_lock = asyncio.Lock()
        self.room = Room(store, settings, self.nvml, self.device, self.residents, self._evict)
        self.load_failures = LoadFailures()

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
        return self.room.limits()

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

    def estimate(self, spec: ModelSpec) -> int:
        """Memory a load of `spec` is expected to take, before it happens."""
        return self.room.estimate(spec)

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
            except BaseException:  # the load failed, or this request was cancelled (client gone)
                self._waiting[spec.name] -= 1
                self._idle_if_unheld(spec.name)
                raise
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
        if self._loaded.get(model.spec.name) is not model:
            return
        if model.memory_bytes > model.budgeted_bytes or model.batcher.memory.working_bytes:
            # The arena grew on a new shape, or large runs hold working memory again (it goes
            # back when the model idles): a load's check could not see that, so idle models
            # go now rather than the device staying over its budget until the next load.
            model.budgeted_bytes = model.memory_bytes
            await self.room.enforce_budget(
                keep=model.spec.name, device=model.device, cause="the growth of"
            )
        if model.in_flight > 0:
            return
        await self.room.wake_waiters()
        if model.keep_alive == 0:
            await self.unload(model.spec.name, reason="keep_alive 0")
        else:
            # Growth (or a load) that passed the budget while the other models were busy: an
            # idle one goes now, rather than the device staying over with all of them idle.
            await self.room.enforce_left_over(keep=model.spec.name, device=model.device)
            self._start_expiry(model)

    def _start_expiry(self, model: LoadedModel) -> None:
        """Start `model`'s idle time: it unloads after its keep_alive unless a request takes
        it first (_acquire cancels this)."""
        if model.keep_alive == math.inf:
            return
        model.expires_at = time.time() + model.keep_alive
        loop = asyncio.get_running_loop()
        model.expiry = loop.call_later(
            model.keep_alive,
            lambda: loop.create_task(self._expire(model)),
            context=contextvars.Context(),  # the expiry is no request's: no request ID
        )

    def _idle_if_unheld(self, name: str) -> None:
        """A loaded model that no request holds or waits for goes idle, as at a release: the
        requests it was loaded for left (cancelled) before they took it."""
        model = self._loaded.get(name)
        if model is None or model.busy or self._waiting[name] or model.expiry is not None:
            return
        self._start_expiry(model)
        if self.room.waited_for:  # a load waiting for room may evict it now
            asyncio.get_running_loop().create_task(self.room.wake_waiters())

    async def _expire(self, model: LoadedModel) -> None:
        name = model.spec.name
        if not model.busy and not self._waiting[name] and self._loaded.get(name) is model:
            await self.unload(name, reason="keep_alive expired")

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
            files = files_state(self.store.paths(spec))
            # Evicting healthy models for a load that failed, from these same files, would
            # only make them reload after this one fails again: it loads if there is room.
            failed = self.load_failures.unchanged(spec.name, files)
            await self.room.make(spec, refuse=failed, wanted=lambda: self._waiting[spec.name] > 0)
            try:
                model = await self.room.retry_out_of_memory(
                    spec.name,
                    lambda: load_model(
                        spec,
                        self.store,
                        self.runtime,
                        self.nvml,
                        self.executor,
                        self.settings,
                        keep_alive=self.default_keep_alive(spec),
                        growth=self.growth,
                    ),
                )
            except Exception as exc:
                metrics.model_load_failed(spec.name)
                error = load_error(spec.name, exc)
                if out_of_memory(exc) and self._loaded:  # busy or pinned models may let go
                    short = f"{error.message} (other models hold memory now)"
                    raise Busy(short, retry_after=5) from None
                self.load_failures.record(spec.name, files, error)
                raise error from None
            self.load_failures.forget(spec.name)
            self.room.measured(spec, model.load_bytes)
            self._loaded[spec.name] = model
            metrics.model_loaded(spec.name, model.device, model.load_bytes, model.load_seconds)
            metrics.memory_budget(self.device, self.budget())
            # On the device it really runs on (a CUDA session can fall back to the CPU).
            model.budgeted_bytes = model.memory_bytes
            await self.room.enforce_budget(keep=spec.name, device=model.device)
            self._idle_if_unheld(spec.name)  # every request it was loaded for has left
        return model

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
        await self.room.wake_waiters()
        return True

    async def _evict(self, name: str, reason: str) -> bool:
        return await self.unload(name, reason=reason)

    async def expire(self, name: str) -> None:
        """Ollama's unload request (`keep_alive: 0`, nothing to run): unload now if idle,
        else when its requests in flight end, as a request's keep_alive 0 does."""
        model = self._loaded.get(name)
        if model is None:
            return
        if model.busy:
            model.set_keep_alive(0, next(self.arrivals))
        else:
            await self.unload(name, reason="unload requested")

    def _free(self, model: LoadedModel) -> None:
        device = model.device
        model.encoder.close()
        del model
        gc.collect()
        release_free_heap()
        self.growth[device].reset()  # memory went back: later growth counts from here

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
        """At shutdown: refuse what is queued and let the device go without waiting for it. A
        batch running there is not waited for (nor are sessions freed behind it): one batch can
        outlast GATEWAY_SHUTDOWN_GRACE, and the process is exiting (uvicorn re-raises SIGTERM
        once the lifespan ends, so nothing joins the device thread)."""
        for task in list(self._loading.values()):
            task.cancel()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        for name, model in list(self._loaded.items()):
            model.cancel_expiry()
            await model.batcher.close()
            log.info("unloaded %s (shutdown)", name)
        self._loaded.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
