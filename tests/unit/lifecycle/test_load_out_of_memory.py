"""A load that runs out of memory (the budget's estimate was short, or memory outside the budget
was taken): idle models make way and the load is tried once more; memory held by busy models is
a 503 to retry, not a failure remembered against the model's files (gateway.room,
gateway.manager)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.errors import Busy, ModelLoadError
from gateway.load_errors import out_of_memory
from gateway.manager import ModelManager
from gateway.registry import Registry
from tests.unit.lifecycle.support import OUT_OF_MEMORY, FakeLoads, serve, spec


def loaded(manager: ModelManager) -> list[str]:
    return sorted(m.spec.name for m in manager.loaded())


def test_idle_models_make_way_for_a_load_that_ran_out_of_memory(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    async def run() -> None:
        manager = build()  # the budget thinks all three fit
        await serve(manager, spec(registry, "alpha"))
        await serve(manager, spec(registry, "beta"))
        loads.too_big.add("bad")
        loads.room_for = lambda: not manager.loaded()
        await serve(manager, spec(registry, "bad"))
        assert loaded(manager) == ["bad"]
        assert loads.count["bad"] == 2, "tried once, then again after the idle ones left"
        assert "bad" not in manager.load_failures
        await manager.close()

    asyncio.run(run())


def test_memory_held_by_a_busy_model_is_a_503_not_a_remembered_failure(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    async def run() -> None:
        manager = build()
        alpha = spec(registry, "alpha")
        loads.too_big.add("bad")
        loads.room_for = lambda: not manager.loaded()
        async with manager.use(alpha):  # alpha is busy: it cannot go
            with pytest.raises(Busy) as refused:
                await serve(manager, spec(registry, "bad"))
            assert refused.value.retry_after == 5
            assert "Failed to allocate memory" in refused.value.message
            assert "other models hold memory now" in refused.value.message
            assert loads.count["bad"] == 1, "nothing idle to evict: no second try"
        assert "bad" not in manager.load_failures
        await serve(manager, spec(registry, "bad"))  # alpha is idle now, and makes way
        assert loaded(manager) == ["bad"]
        await manager.close()

    asyncio.run(run())


def test_a_model_alone_out_of_memory_is_remembered(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    """Nothing else holds memory: the model does not fit this machine, and a retry would fail
    the same way (so later loads from these files evict nothing for it)."""

    async def run() -> None:
        manager = build()
        loads.too_big.add("bad")
        loads.room_for = lambda: False
        with pytest.raises(ModelLoadError) as failed:
            await serve(manager, spec(registry, "bad"))
        assert "Failed to allocate memory" in failed.value.message
        assert loads.count["bad"] == 1
        assert "Failed to allocate memory" in manager.load_failures["bad"]
        await manager.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError(OUT_OF_MEMORY),
        RuntimeError("CUDA failure 2: out of memory ; GPU=0 ; expr=cudaMalloc(&p, size);"),
        RuntimeError("CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED"),
        RuntimeError("Exception from src/inference/src/cpp/core.cpp:109: std::bad_alloc"),
    ],
)
def test_out_of_memory_reads_each_runtimes_words(error: Exception) -> None:
    assert out_of_memory(error)
    try:  # as a loader re-raises it, wrapped
        raise ValueError("could not build the session") from error
    except ValueError as wrapped:
        assert out_of_memory(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("cannot load model.onnx: protobuf parsing failed"),
        OSError(28, "No space left on device"),
        ValueError("memory_estimate must be a size"),
    ],
)
def test_other_failures_are_not_out_of_memory(error: Exception) -> None:
    assert not out_of_memory(error)
