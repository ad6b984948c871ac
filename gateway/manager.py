"""ModelManager: the one owner of loaded-model state.

- Lazy loading: a model loads on first use; N concurrent first requests cause one load.
- keep_alive as Ollama has it: the last request's value wins, 0 unloads when the request ends,
  inf (negative on the wire) keeps the model forever.
- A memory budget measured, not guessed: each load's footprint is measured (host RSS delta, or
  GPU memory through NVML), and before a load the least recently used idle models are evicted
  until the new one fits. A model with a request in flight is never unloaded; if the busy ones
  leave no room, the load waits a bounded time and then fails with 503 naming them.

Loads, unloads and inference share the device's one worker thread, so a measured footprint is
never blurred by another model's run happening at the same moment.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from gateway.backends import bucket_length, session_placement
from gateway.backends.vram import probe_vram_per_token, token_budget
from gateway.batching import Batcher, measure_run_overhead
from gateway.encoders import Encoder, build_encoder
from gateway.errors import Busy, ModelNotFound, PullFailed
from gateway.memory import (
    Nvml,
    host_available,
    process_anonymous,
    process_rss,
    release_free_heap,
    resolve_budget,
)
from gateway.memory import host_total as host_memory_total
from gateway.registry import AnySpec, Registry
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources import ModelStore, SourceError

log = logging.getLogger(__name__)

# Before the first measurement and without a registry estimate, a model is assumed to need this
# many times its files' size (weights, plus folded constants and the runtime's arena).
FILE_SIZE_FACTOR = 2.5


@dataclass(eq=False)
class LoadedModel:
    spec: AnySpec
    encoder: Encoder
    batcher: Batcher
    device: str
    load_seconds: float
    load_bytes: int  # measured at load: host RSS delta on CPU, device memory delta on GPU
    keep_alive: float
    digest: str  # sha256 of the model file: identifies the weights in cache keys
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    in_flight: int = 0
    compute: dict[str, object] = field(default_factory=dict)  # backend, precision, why
    expires_at: float | None = None
    _expiry: asyncio.TimerHandle | None = None

    @property
    def memory_bytes(self) -> int:
        """Load footprint plus what the runtime's arena grew by while serving."""
        return self.load_bytes + self.batcher.stats.grown_bytes

    @property
    def busy(self) -> bool:
        return self.in_flight > 0


class ModelManager:
    def __init__(
        self,
        registry: Registry,
        store: ModelStore,
        runtime: Runtime,
        settings: Settings,
        nvml: Nvml | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
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
        self.load_failures: dict[str, str] = {}
        self._vram_per_token: dict[str, float | None] = {}  # measured at load, on a GPU

    # -- state ---------------------------------------------------------------------------------

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def get(self, name: str) -> LoadedModel | None:
        return self._loaded.get(name)

    @property
    def device(self) -> str:
        return "cuda" if self.runtime.wants_cuda else "cpu"

    def default_keep_alive(self, spec: AnySpec) -> float:
        per_model = spec.keep_alive_seconds
        return self.settings.keep_alive if per_model is None else per_model

    def budget(self) -> int | None:
        """Bytes the loaded models may use on this device; None when uncapped."""
        if self.device == "cuda":
            gpu = self.nvml.memory()
            if gpu is not None:
                return resolve_budget(self.settings.max_vram, gpu.total)
        return resolve_budget(self.settings.max_ram, host_memory_total())

    def used(self) -> int:
        return sum(model.memory_bytes for model in self._loaded.values())

    def memory_view(self) -> dict[str, object]:
        """The budget and what is in it, for /health and /admin/models."""
        gpu = self.nvml.memory()
        return {
            "device": self.device,
            "budget_bytes": self.budget(),
            "used_bytes": self.used(),
            "loaded_models": len(self._loaded),
            "max_loaded_models": self.settings.max_loaded_models or None,
            "process_rss_bytes": process_rss(),
            "host_available_bytes": host_available(),
            "gpu": None if gpu is None else {"total_bytes": gpu.total, "used_bytes": gpu.used},
        }

    def _footprint_key(self, spec: AnySpec) -> str:
        # Keyed by the model file, so aliases and entries sharing weights share a measurement.
        return str(self.store.path_of(spec, "model").resolve())

    def estimate(self, spec: AnySpec) -> int:
        """Memory a load of `spec` is expected to take, before it happens."""
        key = self._footprint_key(spec)
        if key in self._measured:
            return self._measured[key]
        if spec.memory_estimate_bytes is not None:
            return spec.memory_estimate_bytes
        return int(self.store.size(spec) * FILE_SIZE_FACTOR)

    # -- use -----------------------------------------------------------------------------------

    @asynccontextmanager
    async def use(
        self, spec: AnySpec, keep_alive: float | None = None
    ) -> AsyncIterator[tuple[LoadedModel, float]]:
        """Hold `spec` loaded for the duration of a request; yields (model, load seconds).

        `keep_alive` (seconds, inf for forever) replaces the model's idle time, as in Ollama:
        the last request's value wins; None means the model's default.
        """
        model, load_seconds = await self._acquire(spec)
        model.keep_alive = self.default_keep_alive(spec) if keep_alive is None else keep_alive
        try:
            yield model, load_seconds
        finally:
            await self._release(model)

    async def _acquire(self, spec: AnySpec) -> tuple[LoadedModel, float]:
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
        model.last_used = time.time()
        model.expires_at = None
        if model._expiry is not None:
            model._expiry.cancel()
            model._expiry = None
        return model, time.perf_counter() - started

    async def _release(self, model: LoadedModel) -> None:
        model.in_flight -= 1
        model.last_used = time.time()
        if model.in_flight > 0 or self._loaded.get(model.spec.name) is not model:
            return
        async with self._idle:
            self._idle.notify_all()
        if model.keep_alive == 0:
            await self.unload(model.spec.name, reason="keep_alive 0")
        elif model.keep_alive != math.inf:
            model.expires_at = time.time() + model.keep_alive
            loop = asyncio.get_running_loop()
            model._expiry = loop.call_later(
                model.keep_alive, lambda: loop.create_task(self._expire(model))
            )

    async def _expire(self, model: LoadedModel) -> None:
        if not model.busy and self._loaded.get(model.spec.name) is model:
            await self.unload(model.spec.name, reason="keep_alive expired")

    # -- load ----------------------------------------------------------------------------------

    async def _load(self, spec: AnySpec) -> LoadedModel:
        missing = self.store.missing(spec)
        if missing and self.settings.auto_pull:
            try:
                await asyncio.to_thread(self.store.pull, spec)
            except SourceError as exc:
                raise PullFailed(f"model '{spec.name}' could not be pulled: {exc}") from None
        elif missing:
            raise ModelNotFound(
                f"model '{spec.name}' not found, try pulling it first "
                f"(gateway pull {spec.name}, or POST /api/pull)"
            )
        async with self._load_lock:  # one load at a time, like Ollama
            await self._make_room(spec)
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            try:
                encoder, footprint, overhead = await loop.run_in_executor(
                    self.executor, self._build_measured, spec
                )
                # Hashing a large file can take a second; never on the event loop.
                digest = await asyncio.to_thread(self.store.digest, spec)
            except Exception as exc:
                self.load_failures[spec.name] = str(exc)
                raise
            self.load_failures.pop(spec.name, None)
            placement = session_placement(encoder)
            # Deltas measured in a busy process vary from load to load; budget by the largest.
            key = self._footprint_key(spec)
            self._measured[key] = max(footprint, self._measured.get(key, 0))
            model = LoadedModel(
                spec=spec,
                encoder=encoder,
                batcher=Batcher(
                    encoder,
                    self.executor,
                    max_batch_size=spec.max_batch_size or self.settings.max_batch_size,
                    max_batch_tokens=token_budget(
                        spec.max_batch_tokens or self.settings.max_batch_tokens,
                        self._vram_per_token.pop(spec.name, None),
                        self.nvml.memory() if self.device == "cuda" else None,
                    ),
                    max_queue=self.settings.max_queue,
                    measure_growth=self.device == "cpu",
                    overhead_tokens=overhead,
                    bucket=bucket_length if placement and placement.bucketed else None,
                ),
                compute=placement.describe() if placement else {},
                device=self.device,
                load_seconds=time.perf_counter() - started,
                load_bytes=footprint,
                keep_alive=self.default_keep_alive(spec),
                digest=digest,
            )
            self._loaded[spec.name] = model
            await self._enforce_budget(keep=model)
        if not encoder.batch_invariant:
            log.warning(
                "%s quantizes activations dynamically: its inputs run one at a time so a "
                "vector never depends on what it is batched with",
                spec.name,
            )
        log.info(
            "loaded %s on %s in %.2fs (%.0f MiB)",
            spec.name,
            model.device,
            model.load_seconds,
            footprint / 2**20,
        )
        return model

    def _build_measured(self, spec: AnySpec) -> tuple[Encoder, int, float]:
        """On the device thread: build the encoder, time its runs (which also warms the
        runtime's arena) and measure the memory all that took."""
        gpu_before = self.nvml.memory() if self.device == "cuda" else None
        rss_before = process_anonymous()
        encoder = build_encoder(spec, self.store.paths(spec), self.runtime)
        overhead = measure_run_overhead(encoder)
        if gpu_before is not None:
            self._vram_per_token[spec.name] = probe_vram_per_token(encoder, self.nvml)
        footprint = max(process_anonymous() - rss_before, 0)
        if gpu_before is not None and (gpu_after := self.nvml.memory()) is not None:
            mine_before = gpu_before.used_by_this_process
            mine_after = gpu_after.used_by_this_process
            if mine_before is not None and mine_after is not None:
                footprint = max(mine_after - mine_before, 0)
            else:
                footprint = max(gpu_after.used - gpu_before.used, 0)
        return encoder, footprint, overhead

    async def _make_room(self, spec: AnySpec) -> None:
        """Evict idle models, least recently used first, until `spec` fits; wait if all busy."""
        need = self.estimate(spec)
        deadline = time.monotonic() + self.settings.memory_wait
        while not self._fits(need):
            victim = self._eviction_candidate()
            if victim is not None:
                await self.unload(victim.spec.name, reason=f"making room for {spec.name}")
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._loaded:
                raise self._no_room(spec, need)
            async with self._idle:
                try:
                    await asyncio.wait_for(self._idle.wait(), timeout=remaining)
                except TimeoutError:
                    raise self._no_room(spec, need) from None

    async def _enforce_budget(self, keep: LoadedModel) -> None:
        """After a load measured more than estimated: evict idle LRU models until within budget."""
        budget = self.budget()
        while budget is not None and self.used() > budget:
            victim = self._eviction_candidate(exclude=keep)
            if victim is None:
                return
            await self.unload(
                victim.spec.name, reason=f"over budget after loading {keep.spec.name}"
            )

    def _fits(self, need: int) -> bool:
        limit = self.settings.max_loaded_models
        if limit and len(self._loaded) >= limit:
            return False
        budget = self.budget()
        return budget is None or not self._loaded or self.used() + need <= budget

    def _eviction_candidate(self, exclude: LoadedModel | None = None) -> LoadedModel | None:
        idle = [
            m
            for m in self._loaded.values()
            if not m.busy
            and not self._waiting[m.spec.name]
            and not m.spec.pinned
            and m is not exclude
        ]
        return min(idle, key=lambda m: m.last_used, default=None)

    def _no_room(self, spec: AnySpec, need: int) -> Busy:
        holders = ", ".join(
            f"{m.spec.name} ({m.memory_bytes / 2**20:.0f} MiB, "
            f"{'pinned' if m.spec.pinned else f'{m.in_flight} in flight'})"
            for m in self._loaded.values()
        )
        budget = self.budget()
        cap = "no cap" if budget is None else f"{budget / 2**20:.0f} MiB"
        return Busy(
            f"not enough memory to load {spec.name} (needs about {need / 2**20:.0f} MiB, "
            f"budget {cap}); held by: {holders}",
            retry_after=5,
        )

    # -- unload --------------------------------------------------------------------------------

    async def unload(self, name: str, *, reason: str = "requested") -> bool:
        """Unload an idle model now. Returns False if it is not loaded or is busy."""
        model = self._loaded.get(name)
        if model is None or model.busy:
            return False
        del self._loaded[name]
        if model._expiry is not None:
            model._expiry.cancel()
        await model.batcher.close()
        # On the device thread: a run in progress finishes before its session goes away.
        await asyncio.get_running_loop().run_in_executor(self.executor, self._free, model)
        log.info("unloaded %s (%s)", name, reason)
        async with self._idle:
            self._idle.notify_all()
        return True

    @staticmethod
    def _free(model: LoadedModel) -> None:
        model.encoder.close()
        del model
        gc.collect()
        release_free_heap()

    async def preload(self) -> None:
        for name in self.registry.preload:
            spec = self.registry.models[name]
            async with self.use(spec):
                pass

    async def close(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)
        for name in list(self._loaded):
            self._loaded[name].in_flight = 0
            await self.unload(name, reason="shutdown")
        self.executor.shutdown(wait=True)
