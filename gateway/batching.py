"""Batcher: one queue per loaded model, drained into length-sorted, token-budgeted batches.

Requests from every client land in one queue. Each batch is cut from a window of the oldest
queued items, sorted by length so little padding is wasted, and always holds the oldest item so
nothing starves. Batches run on the device's single inference thread, so one run at a time per
device; preparing inputs (tokenizing, decoding images) happens in other threads meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from gateway import metrics
from gateway.encoders.base import AnyEncoder, Item
from gateway.errors import Busy, GatewayError
from gateway.memory import ArenaReading, GrowthMeter
from gateway.redact import runtime_cause
from gateway.request_context import NO_REQUEST, current_request_id
from gateway.run_memory import RunMemory
from gateway.run_overhead import DEFAULT_RUN_OVERHEAD_TOKENS, RunOverhead

log = logging.getLogger(__name__)

WINDOW_BATCHES = 8  # how many batches' worth of queued items are sorted together
# A failed run's log line names at most this many of its requests (IDs are up to 128 chars).
NAMED_REQUESTS = 10
# How long a model's queue stays empty before large runs' working memory goes back: longer
# than a client's pause between one large request and its next (run_memory.py).
RELEASE_IDLE_SECONDS = 1.0


class InferenceError(GatewayError):
    status_code = 500
    code = "inference_failed"


@dataclass(eq=False)
class _Job:
    future: asyncio.Future[list[np.ndarray]]
    results: list[np.ndarray | None]
    remaining: int
    queued_at: float = field(default_factory=time.perf_counter)
    # The submitting request's: a batch mixes clients, and its failure is logged off-request.
    request_id: str = field(default_factory=current_request_id)


@dataclass(eq=False, slots=True)
class _Entry:
    job: _Job
    index: int
    item: Item

    @property
    def length(self) -> int:
        return self.item.length


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    busy_seconds: float = 0.0
    rejected: int = 0

    @property
    def padding_ratio(self) -> float:
        return self.padded_tokens / self.real_tokens if self.real_tokens else 1.0


def cut_batch(
    window: Sequence[_Entry],
    *,
    max_size: int,
    max_tokens: int,
    overhead_tokens: float,
    bucket: Callable[[int], int] | None = None,
) -> list[_Entry]:
    """The batch to run next: a run of similar lengths that contains window[0] (the oldest).

    The window is sorted by length and cut into consecutive groups. A group closes when it is
    full (count, or padded tokens over the budget), or when the next, longer entry would pad
    every member by more than a run of its own costs (`overhead_tokens`). The group holding
    the oldest entry runs, so nothing starves; the rest wait for company.

    With `bucket` (a backend that pads to shape buckets, gateway/backends/buckets.py) a group
    also closes where the bucket changes, so every member runs at the padded length it would
    get alone.
    """
    oldest = window[0]
    group: list[_Entry] = []
    for entry in sorted(window, key=lambda e: e.length):
        if group:
            count, longest = len(group), group[-1].length  # sorted: the last is the longest
            full = count >= max_size or entry.length * (count + 1) > max_tokens
            padding = count * (entry.length - longest)
            if bucket is not None:
                full = full or bucket(entry.length) != bucket(longest)
                padding = 0  # within a bucket every member is padded to the bucket anyway
            if full or padding > overhead_tokens:
                if any(e is oldest for e in group):
                    return group
                group = []
        group.append(entry)
    return group


class Batcher:
    """Schedules one model's inference; owns its queue alone."""

    def __init__(
        self,
        encoder: AnyEncoder,
        executor: Executor,
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        max_queue: int,
        arena: ArenaReading | None = None,
        run_overhead: RunOverhead | None = None,
        bucket: Callable[[int], int] | None = None,
        growth: GrowthMeter | None = None,
        release_tokens: int = 0,
        release_delay: float = RELEASE_IDLE_SECONDS,
    ) -> None:
        self.encoder = encoder
        self.executor = executor
        # A model that quantizes activations per batch runs each item alone: mixing items
        # would make a text's vector depend on its neighbours.
        self.max_batch_size = max_batch_size if encoder.batch_invariant else 1
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        # What runs take from memory; runs of release_tokens or more give theirs back once
        # the queue has been empty for release_delay seconds.
        self.memory = RunMemory(arena, growth or GrowthMeter(), release_tokens)
        self.release_delay = release_delay
        self._release_timer: asyncio.TimerHandle | None = None
        self.stats = BatchStats()
        self.run_overhead = run_overhead or RunOverhead(DEFAULT_RUN_OVERHEAD_TOKENS, "default")
        self.bucket = bucket
        self._pending: list[_Entry] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_device = False  # a batch is running (one at a time per model)
        self._closed = False

    @property
    def overhead_tokens(self) -> float:
        return self.run_overhead.tokens

    @property
    def queued(self) -> int:
        """Inputs waiting for clients that still wait (a departed client's stay in the queue
        until the next batch is cut skips them)."""
        return sum(1 for e in self._pending if not e.job.future.done())

    async def submit(self, items: Sequence[Item]) -> list[np.ndarray]:
        """Run `items` (possibly across several batches); results come back in order."""
        if not items:
            return []
        if self._closed:
            raise Busy("the model was unloaded, please retry")
        if len(self._pending) + len(items) > self.max_queue:
            # Departed clients' inputs wait in the queue until the next batch is cut: drop them
            # before refusing anyone on their account (here only, not on every submit).
            self._pending = [e for e in self._pending if not e.job.future.done()]
            if self._pending and len(self._pending) + len(items) > self.max_queue:
                self.stats.rejected += 1
                metrics.queue_rejected(self.encoder.spec.name)
                raise Busy(f"server busy, please try again ({len(self._pending)} inputs queued)")
        self._loop = asyncio.get_running_loop()
        job = _Job(self._loop.create_future(), [None] * len(items), len(items))
        self._pending.extend(_Entry(job, i, item) for i, item in enumerate(items))
        if not self._on_device:
            self._dispatch()
        else:
            metrics.queue_depth(self.encoder.spec.name, len(self._pending))
        # A cancelled wait (client gone) marks the job done; its queued items are then skipped.
        return await job.future

    async def close(self) -> None:
        self._closed = True
        self._cancel_release()
        self._refuse_all()

    def _refuse_all(self) -> None:
        for entry in self._pending:
            if not entry.job.future.done():
                entry.job.future.set_exception(Busy("the model was unloaded, please retry"))
        self._pending.clear()
        self._on_device = False

    def _dispatch(self) -> None:
        """On the event loop: cut the next batch and hand it to the device thread, or go idle.

        Callbacks rather than a task awaiting the executor: a run's results reach their
        requests one loop turn after it ends, and the next batch starts in that same turn
        (a drain task took two more turns each way: ~0.1 ms on the one-text path).
        """
        self._pending = [e for e in self._pending if not e.job.future.done()]
        if not self._pending or self._closed:
            self._on_device = False
            metrics.queue_depth(self.encoder.spec.name, len(self._pending))
            if self.memory.due and not self._closed and self._loop is not None:
                self._cancel_release()
                self._release_timer = self._loop.call_later(self.release_delay, self._release)
            return
        self._cancel_release()
        window = self._pending[: self.max_batch_size * WINDOW_BATCHES]
        batch = cut_batch(
            window,
            max_size=self.max_batch_size,
            max_tokens=self.max_batch_tokens,
            overhead_tokens=self.overhead_tokens,
            bucket=self.bucket,
        )
        chosen = {id(e) for e in batch}
        self._pending = [e for e in self._pending if id(e) not in chosen]
        metrics.queue_depth(self.encoder.spec.name, len(self._pending))
        self._on_device = True
        try:
            self.executor.submit(self._run_batch, batch, time.perf_counter())
        except RuntimeError:  # the executor is shut down: the gateway is closing
            self._pending[:0] = batch
            self._refuse_all()

    def _cancel_release(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None

    def _release(self) -> None:
        """On the event loop, the queue idle for release_delay: release on the device thread
        (a batch submitted meanwhile runs after it there)."""
        self._release_timer = None
        if self._on_device or self._pending or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the executor is shut down: closing
            self.executor.submit(self._release_on_device)

    def _release_on_device(self) -> None:
        if not self._closed:  # an unload frees the session after this, on the same thread
            self.memory.release(self.encoder.release_memory)

    def _run_batch(self, batch: list[_Entry], dispatched: float) -> None:
        """On the device thread: run, then hand the outcome back to the event loop."""
        loop = self._loop
        assert loop is not None
        try:
            outputs, seconds = self._run([e.item for e in batch])
        except Exception as exc:
            outcome: Callable[[], None] = partial(self._failed, batch, exc)
        else:
            outcome = partial(self._finished, batch, outputs, seconds, dispatched)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(outcome)

    def _finished(
        self, batch: list[_Entry], outputs: list[np.ndarray], seconds: float, dispatched: float
    ) -> None:
        for entry, output in zip(batch, outputs, strict=True):
            job = entry.job
            if job.future.done():
                continue
            job.results[entry.index] = output
            job.remaining -= 1
            if job.remaining == 0:
                job.future.set_result(job.results)  # type: ignore[arg-type]
        self._dispatch()  # the device waits for nobody; the bookkeeping can
        self._record(batch, seconds, dispatched)

    def _failed(self, batch: list[_Entry], exc: Exception) -> None:
        jobs = list(dict.fromkeys(e.job for e in batch if not e.job.future.done()))
        cause = runtime_cause(exc)
        self._log_failure(list(dict.fromkeys(j.request_id for j in jobs)), batch, exc, cause)
        error = InferenceError(f"inference failed: {cause}")
        for job in jobs:
            job.future.set_exception(error)
        self._dispatch()

    def _log_failure(self, ids: list[str], batch: list[_Entry], exc: Exception, cause: str) -> None:
        """One line with the traceback for the batch, naming the requests (`ids`) it fails; it
        runs on the loop outside any request. With one request, that line is the request's;
        with several, each also gets a line of its own, so that its ID (the X-Request-ID its
        client saw) finds its failure, though the batch line names ten at most."""
        named = ", ".join(ids[:NAMED_REQUESTS]) or "none still waiting"
        if len(ids) > NAMED_REQUESTS:
            named += f" and {len(ids) - NAMED_REQUESTS} more"
        model = self.encoder.spec.name
        log.error(
            "inference failed for %s (%d inputs; requests: %s)",
            model,
            len(batch),
            named,
            exc_info=exc,
            extra={"request_id": ids[0]} if len(ids) == 1 and ids[0] != NO_REQUEST else None,
        )
        if len(ids) < 2:
            return
        for request_id in ids:
            if request_id != NO_REQUEST:
                log.warning(
                    "inference failed for %s: %s (a batch of %d inputs from %d requests, "
                    "logged with its traceback)",
                    model,
                    cause,
                    len(batch),
                    len(ids),
                    extra={"request_id": request_id},
                )

    def _run(self, items: list[Item]) -> tuple[list[np.ndarray], float]:
        """On the device thread: one run, its duration, and the memory it took (RunMemory).

        Timed there rather than around the await, which would add however long the event loop
        took to notice the result: that delay is not the run's cost.
        """
        longest = max(item.length for item in items)
        shape = (len(items), self.bucket(longest) if self.bucket else longest)
        return self.memory.run(shape, partial(self.encoder.run, items))

    def _record(self, batch: list[_Entry], seconds: float, dispatched: float) -> None:
        stats = self.stats
        longest = max(e.length for e in batch)
        padded = len(batch) * (self.bucket(longest) if self.bucket else longest)
        stats.batches += 1
        stats.items += len(batch)
        real = sum(e.length for e in batch)
        stats.real_tokens += real
        stats.padded_tokens += padded
        stats.busy_seconds += seconds
        waits = [dispatched - e.job.queued_at for e in batch]
        metrics.batch_ran(self.encoder.spec.name, waits, real, padded, seconds)
