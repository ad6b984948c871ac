"""The single-flight Puller: concurrent pulls of one model share one download and its outcome.

The store here stands in for ModelStore.pull only to control timing (a pull that blocks until
released); a real pull is exercised through /api/pull in tests/api/test_pull_api.py.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from gateway.pulling import Puller
from gateway.registry import parse_entry
from gateway.request_context import begin, current_request_id, end
from gateway.sources import ModelStore, SourceError

SPEC = parse_entry(
    "m", {"kind": "text", "source": "/x", "files": {"model": "m", "tokenizer": "t"}, "dim": 4}
)
OTHER = parse_entry(
    "n", {"kind": "text", "source": "/x", "files": {"model": "m", "tokenizer": "t"}, "dim": 4}
)


class GatedStore(ModelStore):
    """A store whose pull reports two steps and waits for `release` between them."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.error = error

    def pull(self, spec: Any, progress: Any = None) -> Any:
        self.calls.append(spec.name)
        progress("pulling manifest", None, None, None)
        self.started.set()
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        progress("success", None, None, None)
        return None


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_concurrent_pulls_of_one_model_share_one_download() -> None:
    store = GatedStore()
    puller = Puller(store)
    heard: dict[str, list[str]] = {"first": [], "second": []}

    async def scenario() -> None:
        first = asyncio.ensure_future(
            puller.pull(SPEC, lambda status, *_: heard["first"].append(status))
        )
        await asyncio.to_thread(store.started.wait, 10)
        assert puller.is_pulling("m")
        second = asyncio.ensure_future(
            puller.pull(SPEC, lambda status, *_: heard["second"].append(status))
        )
        await asyncio.sleep(0.05)
        store.release.set()
        await asyncio.gather(first, second)

    run(scenario())
    assert store.calls == ["m"]
    assert heard["first"] == ["pulling manifest", "success"]
    assert heard["second"] == ["success"]  # joined after the first line
    assert not puller.is_pulling("m")


def test_a_failed_pull_fails_every_caller_and_the_next_pull_starts_afresh() -> None:
    store = GatedStore(error=SourceError("no such package"))
    puller = Puller(store)

    async def scenario() -> list[BaseException | None]:
        first = asyncio.ensure_future(puller.pull(SPEC))
        await asyncio.to_thread(store.started.wait, 10)
        second = asyncio.ensure_future(puller.pull(SPEC))
        store.release.set()
        results = await asyncio.gather(first, second, return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    errors = run(scenario())
    assert all(isinstance(e, SourceError) for e in errors)
    store.error = None
    store.started.clear()
    run(puller.pull(SPEC))
    assert store.calls == ["m", "m"]


def test_different_models_pull_independently() -> None:
    store = GatedStore()
    store.release.set()
    puller = Puller(store)

    async def scenario() -> None:
        await asyncio.gather(puller.pull(SPEC), puller.pull(OTHER))

    run(scenario())
    assert sorted(store.calls) == ["m", "n"]


def test_a_cancelled_caller_does_not_cancel_the_pull() -> None:
    store = GatedStore()
    puller = Puller(store)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(puller.pull(SPEC))
        await asyncio.to_thread(store.started.wait, 10)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        joined = asyncio.ensure_future(puller.pull(SPEC))
        store.release.set()
        await joined

    run(scenario())
    assert store.calls == ["m"]


def test_the_pull_thread_runs_in_the_request_that_started_it() -> None:
    """The store's log lines (`pulled <file> from <source>`) are written on a worker thread:
    they carry the ID of the request that started the pull, not '-'."""
    store = GatedStore()
    store.release.set()
    seen: list[str] = []
    original = store.pull

    def pull(spec: Any, progress: Any = None) -> Any:
        seen.append(current_request_id())
        return original(spec, progress)

    store.pull = pull  # type: ignore[method-assign]

    async def scenario() -> None:
        _, token = begin("pull-request-7")
        try:
            await Puller(store).pull(SPEC)
        finally:
            end(token)

    run(scenario())
    assert seen == ["pull-request-7"]
