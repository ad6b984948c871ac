"""GATEWAY_MAX_QUEUE counts the inputs of clients still waiting: a client that hung up leaves
its inputs in the queue until the next batch is cut, and nobody is refused on their account."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from gateway.batching import Batcher


@dataclass(frozen=True)
class Text:
    length: int


class HeldEncoder:
    """Each run waits until the test lets it finish: the batch stays on the device."""

    spec: Any = SimpleNamespace(name="queue")
    batch_invariant = True

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self, items: list[Text]) -> list[np.ndarray]:
        assert self.release.wait(30), "the test never let the run finish"
        return [np.zeros(4, dtype=np.float32) for _ in items]


def test_a_departed_clients_inputs_do_not_fill_the_queue() -> None:
    encoder = HeldEncoder()
    executor = ThreadPoolExecutor(1)
    subject = Batcher(
        encoder,  # type: ignore[arg-type]
        executor,
        max_batch_size=8,
        max_batch_tokens=10_000,
        max_queue=100,
    )

    async def run() -> None:
        departed = asyncio.create_task(subject.submit([Text(5)] * 1500))
        await asyncio.sleep(0)  # its first batch is on the device, the rest queued
        assert subject.queued == 1500 - 8
        departed.cancel()  # the client hung up while its first batch runs
        await asyncio.sleep(0)
        assert subject.queued == 0
        served = asyncio.create_task(subject.submit([Text(3)]))  # refused Busy before
        await asyncio.sleep(0)
        encoder.release.set()
        assert len(await asyncio.wait_for(served, 30)) == 1

    try:
        asyncio.run(run())
    finally:
        encoder.release.set()
        executor.shutdown()
