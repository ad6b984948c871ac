"""Single-flight model pulls: one download per model at a time, shared by everyone who asks.

Auto-pull on first use, `POST /api/pull` and `gateway pull` all go through `Puller.pull`. A pull
of a model that is already being pulled joins it: the caller hears the rest of its progress and
its outcome, and the files are written once (two writers would race on the same files).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.sources import ModelStore
from gateway.specs import ModelSpec

# status, digest, total, completed: the fields of Ollama's pull progress lines (on the loop).
Listener = Callable[[str, str | None, int | None, int | None], None]


@dataclass(eq=False)
class _Pull:
    done: asyncio.Future[None]
    listeners: list[Listener] = field(default_factory=list)

    def emit(self, status: str, digest: str | None, total: int | None, done: int | None) -> None:
        for listener in list(self.listeners):
            listener(status, digest, total, done)


class Puller:
    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._running: dict[str, _Pull] = {}

    def is_pulling(self, name: str) -> bool:
        return name in self._running

    async def pull(self, spec: ModelSpec, listener: Listener | None = None) -> None:
        """Pull `spec`'s files (or join the pull under way); raises what the pull raised
        (SourceError for a source that fails)."""
        job = self._running.get(spec.name)
        if job is None:
            job = self._start(spec)
        if listener is not None:
            job.listeners.append(listener)
        try:
            await asyncio.shield(job.done)
        finally:
            if listener is not None:
                job.listeners.remove(listener)

    def _start(self, spec: ModelSpec) -> _Pull:
        loop = asyncio.get_running_loop()
        job = _Pull(loop.create_future())
        self._running[spec.name] = job

        def report(status: str, digest: str | None, total: int | None, done: int | None) -> None:
            loop.call_soon_threadsafe(job.emit, status, digest, total, done)

        def finished(work: asyncio.Future[Any]) -> None:
            self._running.pop(spec.name, None)
            error = work.exception()
            if error is not None:
                job.done.set_exception(error)
            else:
                job.done.set_result(None)

        # A thread of the default pool: downloads must not hold the device's worker.
        # In the context of the request that started it: the pull's log lines carry its ID.
        pull = contextvars.copy_context().run
        work = loop.run_in_executor(None, pull, self.store.pull, spec, report)
        work.add_done_callback(finished)
        return job
