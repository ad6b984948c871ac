"""ModelManager's lifecycle decisions with the loads faked (gateway.manager): what unloads a model
nobody took, whose keep_alive counts, what a failed load may evict, and how shutdown treats a
device thread that is still running. Loads are gated by events, so every step is ordered by the
test, not by how fast this machine is."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.catalog import Catalog
from gateway.errors import Busy, ModelLoadError
from gateway.manager import ModelManager
from gateway.pulling import Puller
from gateway.registry import Registry
from gateway.services.models import ModelAdmin
from gateway.settings import Settings
from gateway.sources import ModelStore
from gateway.specs import ModelSpec
from tests.unit.lifecycle.support import DEADLINE, FakeLoads, poll, serve, spec


@pytest.mark.parametrize("leaves", ["while it loads", "as the load ends"])
def test_a_model_loaded_for_requests_that_left_still_expires(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads, leaves: str
) -> None:
    """Every request waiting for the load is cancelled (its client hung up): the model still
    gets its idle time, and unloads when the default keep_alive runs out."""

    async def run() -> None:
        manager = build(keep_alive="50ms")
        loads.gate.clear()
        waiter = asyncio.create_task(serve(manager, spec(registry, "alpha"), keep_alive=600.0))
        await poll(lambda: manager.is_loading("alpha"), "the load started")
        await asyncio.sleep(0)  # the waiter counts itself as waiting for the load
        if leaves == "while it loads":
            waiter.cancel()
        else:  # the load is done and the waiter is about to wake when it is cancelled
            manager._loading["alpha"].add_done_callback(lambda _: waiter.cancel())
        loads.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await poll(lambda: manager.get("alpha") is None, "alpha was never unloaded")
        await manager.close()

    asyncio.run(run())


def test_a_refused_request_does_not_set_keep_alive(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    """Refused Busy (the queue is full), a request was never served: the keep_alive of the last
    request actually served stays (as in Ollama, which refuses before scheduling)."""

    async def run() -> None:
        manager = build()
        alpha = spec(registry, "alpha")
        async with manager.use(alpha, keep_alive=float("inf")):
            with pytest.raises(Busy):
                async with manager.use(alpha, keep_alive=0.0):
                    raise Busy("server busy, please try again (80 inputs queued)")
        model = manager.get("alpha")
        assert model is not None, "unloaded by the refused request's keep_alive 0"
        assert model.keep_alive == float("inf") and model.expires_at is None
        await manager.close()

    asyncio.run(run())


def test_the_last_request_to_arrive_sets_keep_alive_whatever_order_they_end_in(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    async def run() -> None:
        manager = build()
        alpha = spec(registry, "alpha")
        first = manager.use(alpha, keep_alive=float("inf"))
        await first.__aenter__()
        async with manager.use(alpha, keep_alive=0.0):  # arrives last, ends first
            pass
        await first.__aexit__(None, None, None)
        assert manager.get("alpha") is None, "keep_alive 0, the last request's, was ignored"
        await manager.close()

    asyncio.run(run())


def test_a_load_that_failed_from_the_same_files_evicts_nothing(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    async def run() -> None:
        manager = build(max_loaded_models="1")
        alpha, bad = spec(registry, "alpha"), spec(registry, "bad")
        loads.broken.add("bad")
        await serve(manager, alpha)
        with pytest.raises(ModelLoadError):
            await serve(manager, bad)  # the first failure: room was made, as for any load
        await serve(manager, alpha)
        for _ in range(3):
            with pytest.raises(ModelLoadError) as refused:
                await serve(manager, bad)
            assert "protobuf parsing failed" in refused.value.message
            assert [m.spec.name for m in manager.loaded()] == ["alpha"]
        assert loads.count == {"alpha": 2, "bad": 1}
        assert "protobuf parsing failed" in manager.load_failures["bad"]

        # New files (a pull, a fix): the load is tried again, making room for it.
        (manager.store.path_of(bad, "model")).write_bytes(b"a fixed model file")
        loads.broken.clear()
        await serve(manager, bad)
        assert [m.spec.name for m in manager.loaded()] == ["bad"]
        assert "bad" not in manager.load_failures
        await manager.close()

    asyncio.run(run())


def test_close_does_not_wait_for_a_run_on_the_device(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    """A batch on the device can outlast the shutdown grace: close() lets go of it."""
    release = threading.Event()
    threading.Timer(DEADLINE, release.set).start()  # never left hanging, whatever happens

    async def run() -> None:
        manager = build()
        await serve(manager, spec(registry, "alpha"))
        running = manager.executor.submit(release.wait)  # a long run on the device thread
        await manager.close()
        assert not release.is_set(), "close() waited for the run on the device"
        assert manager.get("alpha") is None and not running.done()
        release.set()
        running.result(timeout=DEADLINE)

    try:
        asyncio.run(run())
    finally:
        release.set()


def test_api_ps_reports_the_loaded_weights_digest_without_hashing(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    """/api/ps runs on the event loop: it reports the digest taken at load, never hashing the
    file again (which may have changed on disk since: it is not what is loaded)."""

    async def run() -> None:
        manager = build()
        await serve(manager, spec(registry, "alpha"))
        catalog = Catalog(registry, manager.store)

        def no_hashing(_: ModelSpec) -> str:
            raise AssertionError("/api/ps hashed a model file")

        catalog.digest = no_hashing  # type: ignore[method-assign]
        admin = ModelAdmin(registry, manager.store, catalog, manager, manager.puller, None)  # type: ignore[arg-type]
        (row,) = admin.loaded()
        assert row.digest == "digest-of-alpha"
        await manager.close()

    asyncio.run(run())


def test_a_remembered_load_failure_holds_no_traceback() -> None:
    """The error a failed load raises carries its traceback and the exception it replaced (and
    through their frames the request's inputs); what is remembered must not."""
    from gateway.load_failures import LoadFailures

    failures = LoadFailures()
    inputs = ["a large request body"] * 3

    def fail_to_load(payload: list[str]) -> None:
        try:
            raise ValueError(f"bad graph for {len(payload)} inputs")
        except ValueError:
            error = ModelLoadError("model 'm' could not be loaded")
            failures.record("m", (), error)
            raise error from None

    with pytest.raises(ModelLoadError) as raised:
        fail_to_load(inputs)
    assert raised.value.__traceback__ is not None and raised.value.__context__ is not None
    remembered = failures.unchanged("m", ())
    assert remembered is not None and remembered.message == "model 'm' could not be loaded"
    stored = failures._failed["m"][1]
    assert stored.__traceback__ is None and stored.__context__ is None


def test_host_and_gpu_memory_have_their_own_growth_meters(
    loads: FakeLoads, build: Callable[..., ModelManager], registry: Registry
) -> None:
    """RSS and a GPU's memory are different scales: one high mark for both misjudged growth (a
    CUDA model's 600 MiB charged as -1.6 GiB after a CPU model ran). A load gets both meters
    (it picks the one of the device it ends up on), and an unload resets only its device's."""
    mib = 1 << 20

    async def run() -> None:
        manager = build()
        await serve(manager, spec(registry, "alpha"), keep_alive=math.inf)
        growth = loads.kwargs["growth"]
        assert set(growth) == {"cpu", "cuda"} and growth["cpu"] is not growth["cuda"]
        assert growth["cpu"].charge(3000 * mib, 3050 * mib) == 50 * mib
        assert growth["cuda"].charge(900 * mib, 1500 * mib) == 600 * mib
        assert await manager.unload("alpha", reason="test")  # a CPU model: host memory went back
        assert growth["cpu"].charge(2000 * mib, 2100 * mib) == 100 * mib  # measured afresh
        assert growth["cuda"].charge(1000 * mib, 1200 * mib) < 0  # still under its high mark

    asyncio.run(run())


def test_a_model_that_runs_on_the_cpu_of_a_cuda_gateway_counts_against_ram(
    loads: FakeLoads, registry: Registry, tmp_path: Path
) -> None:
    """A CUDA session that fell back to the CPU (or an OpenVINO model beside CUDA ones) is a
    CPU model: after its load the RAM budget is enforced, not the GPU's it was expected on."""

    async def run() -> None:
        store = ModelStore(tmp_path / "models", registry.base_dir)
        settings = Settings.load({"GATEWAY_MAX_RAM": "1MiB"})  # each fake model takes 1 MiB
        runtime = SimpleNamespace(wants_cuda=True)
        nvml = SimpleNamespace(memory=lambda: None)
        manager = ModelManager(registry, store, runtime, settings, Puller(store), nvml)  # type: ignore[arg-type]
        try:
            assert manager.device == "cuda"
            await serve(manager, spec(registry, "alpha"), keep_alive=math.inf)
            await serve(manager, spec(registry, "beta"), keep_alive=math.inf)
            assert [m.spec.name for m in manager.loaded()] == ["beta"]  # 2 MiB > 1 MiB of RAM
        finally:
            manager.executor.shutdown(wait=False, cancel_futures=True)

    asyncio.run(run())


async def alpha_and_beta_loaded(
    build: Callable[..., ModelManager], registry: Registry
) -> tuple[ModelManager, ModelSpec, ModelSpec]:
    """A manager with room for two and a half fake models (1 MiB each at load), both loaded."""
    manager = build(max_ram="2.5MiB")
    alpha, beta = spec(registry, "alpha"), spec(registry, "beta")
    await serve(manager, alpha, keep_alive=math.inf)
    await serve(manager, beta, keep_alive=math.inf)
    assert sorted(m.spec.name for m in manager.loaded()) == ["alpha", "beta"]
    return manager, alpha, beta


def test_arena_growth_past_the_budget_evicts_an_idle_model_when_the_request_ends(
    loads: FakeLoads, build: Callable[..., ModelManager], registry: Registry
) -> None:
    """A load's budget check sees the footprint measured at load; the arena grows later, on a
    shape's first run. When that growth takes the device over its budget, idle models go as
    the request ends, not at the next load: the model that grew stays, even alone over it."""
    mib = 1 << 20

    async def run() -> None:
        manager, _, beta = await alpha_and_beta_loaded(build, registry)
        async with manager.use(beta) as (model, _):
            model.batcher.memory.grown_bytes += mib  # its first run at a new shape
        assert [m.spec.name for m in manager.loaded()] == ["beta"]
        async with manager.use(beta) as (model, _):
            model.batcher.memory.grown_bytes += 2 * mib  # alone and over: nothing to evict
        assert [m.spec.name for m in manager.loaded()] == ["beta"]
        assert manager.used() == 4 * mib

    asyncio.run(run())


def test_working_memory_held_again_after_a_release_evicts_again(
    loads: FakeLoads, build: Callable[..., ModelManager], registry: Registry
) -> None:
    """Large runs' working memory goes back when the model idles (run_memory.py), and comes
    back with its next large request: the budget must see it each time, not only when it
    first passes the most memory_bytes ever budgeted for the model."""
    mib = 1 << 20

    async def run() -> None:
        manager, alpha, beta = await alpha_and_beta_loaded(build, registry)
        async with manager.use(beta) as (model, _):
            model.batcher.memory.working_bytes = mib  # a burst of large runs
        assert [m.spec.name for m in manager.loaded()] == ["beta"]
        model.batcher.memory.working_bytes = 0  # released once idle
        await serve(manager, alpha, keep_alive=math.inf)  # fits again
        async with manager.use(beta) as (model, _):
            model.batcher.memory.working_bytes = mib  # the next burst
        assert [m.spec.name for m in manager.loaded()] == ["beta"]
        assert manager.used() <= (manager.budget() or 0)
        await manager.close()

    asyncio.run(run())


def test_growth_past_the_budget_while_the_other_model_is_busy_evicts_when_it_goes_idle(
    loads: FakeLoads, build: Callable[..., ModelManager], registry: Registry
) -> None:
    """Arena growth takes the device over its budget while the only other model has a request
    in flight: nothing may go then. When that request ends the device is still over, with both
    idle, and an idle model goes (the least recently used). The manager used to enforce the
    budget only for the model that grew, so the device stayed over it (tests/api's
    test_concurrent_clients_over_three_models_stay_correct saw that under load)."""
    mib = 1 << 20

    async def run() -> None:
        manager, alpha, beta = await alpha_and_beta_loaded(build, registry)
        async with manager.use(alpha):  # busy: not evictable while beta grows
            async with manager.use(beta) as (model, _):
                model.batcher.memory.grown_bytes += mib  # beta's first run at a new shape
            assert sorted(m.spec.name for m in manager.loaded()) == ["alpha", "beta"]
        assert [m.spec.name for m in manager.loaded()] == ["alpha"]  # beta was used less lately
        assert manager.used() <= (manager.budget() or 0)
        await manager.close()

    asyncio.run(run())


def test_a_load_whose_requests_left_while_it_waited_for_room_evicts_nothing(
    build: Callable[..., ModelManager], registry: Registry, loads: FakeLoads
) -> None:
    """beta waits for busy alpha to go idle; its one request leaves meanwhile. When alpha goes
    idle, evicting it would load beta for nobody: the load gives up instead."""

    async def run() -> None:
        manager = build(max_loaded_models="1")
        alpha, beta = spec(registry, "alpha"), spec(registry, "beta")
        async with manager.use(alpha):
            waiter = asyncio.create_task(serve(manager, beta))
            await poll(lambda: manager.room.waited_for, "beta's load waits for room")
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            load = manager._loading["beta"]
        with pytest.raises(Busy, match="no request waits for it"):
            await load
        assert [m.spec.name for m in manager.loaded()] == ["alpha"], "alpha evicted for nobody"
        assert loads.count.get("beta", 0) == 0
        await serve(manager, beta)  # a request that stays still gets its room
        assert [m.spec.name for m in manager.loaded()] == ["beta"]
        await manager.close()

    asyncio.run(run())
