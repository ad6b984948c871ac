"""ModelManager: the one owner of loaded-model state.

Resolves specs to loaded encoders, loading lazily (N concurrent first requests cause one load),
counts in-flight requests, and unloads idle models when their keep_alive runs out. A model with a
request in flight is never unloaded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from gateway.batching import Batcher
from gateway.encoders import Encoder, build_encoder
from gateway.errors import ModelNotFound
from gateway.registry import AnySpec, Registry
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources import ModelStore

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedModel:
    spec: AnySpec
    encoder: Encoder
    batcher: Batcher
    load_seconds: float
    keep_alive: float
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    in_flight: int = 0
    expires_at: float | None = None
    _expiry: asyncio.TimerHandle | None = None


class ModelManager:
    def __init__(
        self,
        registry: Registry,
        store: ModelStore,
        runtime: Runtime,
        settings: Settings,
    ) -> None:
        self.registry = registry
        self.store = store
        self.runtime = runtime
        self.settings = settings
        # One inference thread per device: runs never overlap, so each gets every core.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Task[LoadedModel]] = {}

    # -- state ---------------------------------------------------------------------------------

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def get(self, name: str) -> LoadedModel | None:
        return self._loaded.get(name)

    def default_keep_alive(self, spec: AnySpec) -> float:
        per_model = spec.keep_alive_seconds
        return self.settings.keep_alive if per_model is None else per_model

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
            self._release(model)

    async def _acquire(self, spec: AnySpec) -> tuple[LoadedModel, float]:
        started = time.perf_counter()
        model = self._loaded.get(spec.name)
        if model is None:
            task = self._loading.get(spec.name)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._load(spec))
                self._loading[spec.name] = task
                task.add_done_callback(lambda _: self._loading.pop(spec.name, None))
            model = await asyncio.shield(task)
        waited = time.perf_counter() - started
        model.in_flight += 1
        model.last_used = time.time()
        model.expires_at = None
        if model._expiry is not None:
            model._expiry.cancel()
            model._expiry = None
        return model, waited

    def _release(self, model: LoadedModel) -> None:
        model.in_flight -= 1
        model.last_used = time.time()
        if model.in_flight > 0 or self._loaded.get(model.spec.name) is not model:
            return
        if model.keep_alive == math.inf:
            return
        model.expires_at = time.time() + model.keep_alive
        loop = asyncio.get_running_loop()
        model._expiry = loop.call_later(
            model.keep_alive, lambda: loop.create_task(self._expire(model))
        )

    async def _expire(self, model: LoadedModel) -> None:
        if model.in_flight == 0 and self._loaded.get(model.spec.name) is model:
            await self.unload(model.spec.name, reason="keep_alive expired")

    # -- load / unload -------------------------------------------------------------------------

    async def _load(self, spec: AnySpec) -> LoadedModel:
        missing = self.store.missing(spec)
        if missing and self.settings.auto_pull:
            await asyncio.to_thread(self.store.pull, spec)
        elif missing:
            raise ModelNotFound(
                f"model '{spec.name}' not found, try pulling it first "
                f"(gateway pull {spec.name}, or POST /api/pull)"
            )
        started = time.perf_counter()
        encoder = await asyncio.to_thread(build_encoder, spec, self.store.paths(spec), self.runtime)
        batcher = Batcher(
            encoder,
            self.executor,
            max_batch_size=spec.max_batch_size or self.settings.max_batch_size,
            max_batch_tokens=spec.max_batch_tokens or self.settings.max_batch_tokens,
            max_queue=self.settings.max_queue,
        )
        model = LoadedModel(
            spec=spec,
            encoder=encoder,
            batcher=batcher,
            load_seconds=time.perf_counter() - started,
            keep_alive=self.default_keep_alive(spec),
        )
        if not encoder.batch_invariant:
            log.warning(
                "%s quantizes activations dynamically: its inputs run one at a time so a "
                "text's vector never depends on its batch",
                spec.name,
            )
        self._loaded[spec.name] = model
        log.info("loaded %s in %.2fs", spec.name, model.load_seconds)
        return model

    async def unload(self, name: str, *, reason: str = "requested") -> bool:
        """Unload an idle model now. Returns False if it is not loaded or is busy."""
        model = self._loaded.get(name)
        if model is None or model.in_flight > 0:
            return False
        del self._loaded[name]
        if model._expiry is not None:
            model._expiry.cancel()
        await model.batcher.close()
        # Let a run in progress on the inference thread finish before the session goes.
        await asyncio.get_running_loop().run_in_executor(self.executor, model.encoder.close)
        del model
        gc.collect()
        log.info("unloaded %s (%s)", name, reason)
        return True

    async def close(self) -> None:
        for name in list(self._loaded):
            model = self._loaded[name]
            model.in_flight = 0
            await self.unload(name, reason="shutdown")
        self.executor.shutdown(wait=True)
