"""Large runs' working memory: counted while held, given back once the model's queue has been
idle, and what stays then is what memory_bytes keeps. Simulated process memory; no model."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from gateway.batching import Batcher
from gateway.memory import ArenaReading, GrowthMeter
from gateway.run_memory import RunMemory

MIB = 1 << 20
RELEASE_TOKENS = 4096


@dataclass(frozen=True)
class Text:
    length: int


class Runtime:
    """Anonymous RSS of a process whose runtime keeps the working memory of its largest run
    (~90 KiB a padded token, as MiniLM's did) until released; a release leaves 30 MiB."""

    def __init__(self) -> None:
        self.base = 1 << 30
        self.working = 0
        self.kept = 0
        self.released = 0
        self.spec: Any = SimpleNamespace(name="m")
        self.batch_invariant = True

    def anonymous(self) -> int:
        return self.base + self.kept + self.working

    def run(self, items: list[Text]) -> list[np.ndarray]:
        tokens = len(items) * max(item.length for item in items)
        self.working = max(self.working, tokens * 90 * 1024)
        return [np.zeros(4, dtype=np.float32) for _ in items]

    def release_memory(self) -> None:
        self.released += 1
        self.kept, self.working = 30 * MIB, 0


def batcher(
    runtime: Runtime, *, delay: float = 0.0, release_tokens: int = RELEASE_TOKENS
) -> Batcher:
    return Batcher(
        runtime,  # type: ignore[arg-type]
        ThreadPoolExecutor(1),
        max_batch_size=64,
        max_batch_tokens=16384,
        max_queue=10_000,
        arena=ArenaReading(runtime.anonymous, holds_outputs=True),
        release_tokens=release_tokens,
        release_delay=delay,
    )


async def settle(subject: Batcher, seconds: float) -> None:
    """Wait `seconds`, then for whatever the device thread was given meanwhile."""
    await asyncio.sleep(seconds)
    await asyncio.get_running_loop().run_in_executor(subject.executor, lambda: None)


def test_a_large_batch_working_memory_goes_back_when_idle_and_only_what_stays_is_kept() -> None:
    """Before: 256 inputs of 256 tokens (four runs of 64 x 256) charged the runtime's 1.4 GiB
    working memory to the model for good. Now it counts while held, then 30 MiB stays."""
    runtime = Runtime()
    subject = batcher(runtime, delay=0.05)

    async def scenario() -> tuple[int, int]:
        await subject.submit([Text(256)] * 256)
        held = subject.memory.working_bytes  # the request is done; the model not yet idle long
        await settle(subject, 0.2)
        return held, subject.memory.working_bytes

    held, after = asyncio.run(scenario())
    assert held >= 1400 * MIB  # the budget sees it while it is held
    assert after == 0 and runtime.released == 1
    assert subject.memory.grown_bytes == 30 * MIB  # what the runtime keeps after the release


def test_small_batches_never_release_and_keep_their_growth() -> None:
    runtime = Runtime()
    subject = batcher(runtime)

    async def scenario() -> None:
        for rows, length in ((8, 32), (64, 32), (8, 32)):  # 256 and 2048 padded tokens
            await subject.submit([Text(length)] * rows)
        await settle(subject, 0.05)

    asyncio.run(scenario())
    assert runtime.released == 0 and subject.memory.working_bytes == 0
    # The largest run's, charged once (less the runs' outputs, which are the requests').
    assert 2048 * 90 * 1024 - MIB < subject.memory.grown_bytes <= 2048 * 90 * 1024


def test_the_release_waits_for_the_queue_to_stay_idle() -> None:
    """Requests that follow each other within the delay never pay for a release between them
    (the next large run would fault its memory in again); one release follows the last."""
    runtime = Runtime()
    subject = batcher(runtime, delay=0.3)

    async def scenario() -> list[int]:
        seen = []
        for _ in range(3):
            await subject.submit([Text(128)] * 64)
            await settle(subject, 0.01)
            seen.append(runtime.released)
        await settle(subject, 0.5)
        return [*seen, runtime.released]

    assert asyncio.run(scenario()) == [0, 0, 0, 1]


def test_a_release_then_a_second_burst_charges_nothing_twice() -> None:
    runtime = Runtime()
    memory = RunMemory(ArenaReading(runtime.anonymous, holds_outputs=False), GrowthMeter(), 4096)
    for _ in range(3):  # three bursts of the same large shape, each released
        memory.run((64, 256), lambda: runtime.run([Text(256)] * 64))
        assert memory.working_bytes == 64 * 256 * 90 * 1024
        memory.release(runtime.release_memory)
    assert memory.grown_bytes == 30 * MIB and memory.releases == 3


def test_a_release_of_nothing_large_does_nothing() -> None:
    runtime = Runtime()
    memory = RunMemory(ArenaReading(runtime.anonymous, holds_outputs=False), GrowthMeter(), 0)
    memory.run((64, 256), lambda: runtime.run([Text(256)] * 64))  # release_tokens 0: kept
    memory.release(runtime.release_memory)
    assert runtime.released == 0 and memory.grown_bytes == 64 * 256 * 90 * 1024
