"""The model replica: the gateway's whole app and engine, with Serve placing models on it.

Each replica runs `create_app(settings)`, the app `gateway serve` runs, and answers forwarded
HTTP requests with it. Serve's model multiplexing keeps an LRU of models per replica (at most
`models_per_replica`) and routes a request to a replica that holds its model; placing a model
here loads it into the engine's ModelManager, and Serve's eviction unloads it there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ray import serve

from gateway.api.app import create_app
from gateway.core import Gateway
from gateway.distributed.asgi import ForwardedRequest, ForwardedResponse, Lifespan, call_app
from gateway.distributed.routing import places_model
from gateway.errors import GatewayError
from gateway.manager import ModelManager
from gateway.settings import Settings

log = logging.getLogger("gateway.distributed")

REPLICA_HEADER = b"x-gateway-replica"
RESIDENT_HEADER = b"x-gateway-resident"
UNLOAD_TIMEOUT_SECONDS = 60.0


class ResidentModel:
    """A model Serve counts as loaded on this replica. Serve calls `__del__` (in a worker
    thread) when its LRU evicts the model; that unloads it from the engine."""

    def __init__(
        self, name: str, manager: ModelManager, loop: asyncio.AbstractEventLoop, loop_thread: int
    ) -> None:
        self.name = name
        self._manager = manager
        self._loop = loop
        self._loop_thread = loop_thread
        self._released = False

    def __del__(self) -> None:
        # Called once by Serve's eviction and again by the garbage collector: act once.
        if self._released:
            return
        self._released = True
        try:
            future = asyncio.run_coroutine_threadsafe(self._unload(), self._loop)
            if (
                threading.get_ident() != self._loop_thread
            ):  # Serve waits for the unload before it loads the next model
                future.result(timeout=UNLOAD_TIMEOUT_SECONDS)
        except (RuntimeError, concurrent.futures.TimeoutError) as exc:
            log.warning("could not unload %s: %r", self.name, exc)

    async def _unload(self) -> None:
        if await self._manager.unload(self.name, reason="evicted by Serve's per-replica LRU"):
            return
        model = self._manager.get(self.name)
        if model is not None:  # busy: unload when its last request ends
            model.keep_alive = 0


class GatewayReplica:
    """Deployment class of the model replicas (see serve_app.build_app)."""

    # Serve awaits an async constructor: the app's start-up (preload) runs before traffic.
    async def __init__(self, settings: Settings, models_per_replica: int) -> None:  # type: ignore[misc]
        self.gateway = Gateway.build(settings)
        self.app: Any = create_app(settings, self.gateway)
        self.lifespan = Lifespan(self.app)
        await self.lifespan.start()
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()  # Serve runs __init__ on the replica's loop
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self.started_at = time.time()

        async def place(model_id: str) -> ResidentModel:
            return await self._place(model_id)

        # Wrapped here, not on the class: the per-replica limit is a setting, not a constant.
        self.placed: Callable[[str], Awaitable[ResidentModel]] = serve.multiplexed(
            max_num_models_per_replica=models_per_replica
        )(place)

    async def forward(self, request: ForwardedRequest) -> ForwardedResponse:
        model_id = serve.get_multiplexed_model_id()
        if model_id and places_model(request.path):
            try:
                held = await self.placed(model_id)
                if self.gateway.manager.get(held.name) is None:
                    # Serve still lists it (it has no call to drop one id) but a request's
                    # keep_alive 0 unloaded it: place it again, kept until Serve evicts it.
                    await self._place(model_id)
            except GatewayError as exc:
                # The app meets the same error below and answers it in its API's shape.
                log.info("replica %s: %s not placed: %s", self.replica_id, model_id, exc.message)
        response = await call_app(self.app, request)
        resident = ",".join(sorted(m.spec.name for m in self.gateway.manager.loaded()))
        response.headers.append((REPLICA_HEADER, self.replica_id.encode()))
        response.headers.append((RESIDENT_HEADER, resident.encode()))
        return response

    async def _place(self, model_id: str) -> ResidentModel:
        manager = self.gateway.manager
        spec = self.gateway.registry.resolve(model_id).spec
        async with manager.use(spec, keep_alive=math.inf) as (_, load_seconds):
            pass
        log.info(
            "replica %s: placed %s (loaded in %.2fs); resident: %s",
            self.replica_id,
            spec.name,
            load_seconds,
            ", ".join(m.spec.name for m in manager.loaded()),
        )
        return ResidentModel(spec.name, manager, self.loop, self.loop_thread)

    def resident_models(self) -> dict[str, Any]:
        """What this replica holds, for tests and operators (via a handle call)."""
        return {
            "replica": self.replica_id,
            "models": sorted(m.spec.name for m in self.gateway.manager.loaded()),
        }

    async def __del__(self) -> None:
        await self.lifespan.stop()
