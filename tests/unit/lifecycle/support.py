"""The lifecycle tests' stand-ins: loads faked and gated by events (FakeLoads), and the steps
every test takes (resolve a spec, serve a request, poll for a state)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from gateway.batching import BatchStats
from gateway.loaded import LoadedModel
from gateway.manager import ModelManager
from gateway.memory import GrowthMeter
from gateway.registry import Registry
from gateway.run_memory import RunMemory
from gateway.specs import ModelSpec

DEADLINE = 30.0  # far past anything these steps take, even on a loaded machine


# What ONNX Runtime raises when its arena cannot grow.
OUT_OF_MEMORY = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested "
    "buffer of size 90177536"
)


class FakeLoads:
    """Stands in for gateway.loaded.load_model: loads wait for `gate`; models in `broken` fail;
    models in `too_big` run out of memory unless `room_for()` says there is room."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.broken: set[str] = set()
        self.too_big: set[str] = set()
        self.room_for: Callable[[], bool] = lambda: True
        self.count: dict[str, int] = {}
        self.kwargs: dict[str, Any] = {}  # the last load's

    async def __call__(self, spec: ModelSpec, *args: object, **kwargs: Any) -> LoadedModel:
        self.count[spec.name] = self.count.get(spec.name, 0) + 1
        self.kwargs = kwargs
        await self.gate.wait()
        if spec.name in self.broken:
            raise RuntimeError("cannot load model.onnx: protobuf parsing failed")
        if spec.name in self.too_big and not self.room_for():
            raise RuntimeError(OUT_OF_MEMORY)
        memory = RunMemory(None, GrowthMeter())
        batcher = SimpleNamespace(stats=BatchStats(), memory=memory, close=_nothing)
        encoder = SimpleNamespace(close=lambda: None)
        return LoadedModel(
            spec=spec,
            encoder=encoder,  # type: ignore[arg-type]
            batcher=batcher,  # type: ignore[arg-type]
            device="cpu",
            load_seconds=0.0,
            load_bytes=1 << 20,
            keep_alive=kwargs["keep_alive"],
            digest=f"digest-of-{spec.name}",
            cache_id=f"cache-id-of-{spec.name}",
        )


async def _nothing() -> None:
    return None


def spec(registry: Registry, name: str) -> ModelSpec:
    return registry.resolve(name).spec


async def poll(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def serve(manager: ModelManager, model: ModelSpec, **kwargs: Any) -> None:
    async with manager.use(model, **kwargs):
        pass
