"""The batcher measures the runtime's arena growth once per shape the runtime sees: rows and
the padded length (not the longest input), so same-bucket batches do not read /proc again; and
memory other threads hold meanwhile is not charged to the model shape after shape."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gateway import batching
from gateway.backends import bucket_length
from gateway.batching import Batcher
from gateway.memory import GrowthMeter


@dataclass(frozen=True)
class Text:
    length: int


class Encoder:
    spec: Any = SimpleNamespace(name="growth")
    batch_invariant = True

    def run(self, items: list[Text]) -> list[np.ndarray]:
        return [np.zeros(4, dtype=np.float32) for _ in items]


@pytest.mark.parametrize(
    ("bucket", "measured"),
    [(partial(bucket_length, step=8), 2), (None, 3)],  # 17 and 20 share the 24-token bucket
)
def test_growth_is_measured_once_per_padded_shape(
    monkeypatch: pytest.MonkeyPatch, bucket: Any, measured: int
) -> None:
    reads: list[int] = []
    monkeypatch.setattr(batching, "process_anonymous", lambda: reads.append(1) or 0)
    subject = Batcher(
        Encoder(),  # type: ignore[arg-type]
        ThreadPoolExecutor(1),
        max_batch_size=8,
        max_batch_tokens=10_000,
        max_queue=100,
        measure_growth=True,
        bucket=bucket,
    )
    for length in (17, 20, 17, 30):  # one at a time: each is a batch of one
        asyncio.run(subject.submit([Text(length)]))
    assert len(reads) == 2 * measured  # a read before and after each measured run


class Process:
    """Anonymous RSS of a simulated process: an arena that grows 10 MiB per new shape, and
    other threads' memory (a request body, say) held at the end of every run, freed soon after."""

    def __init__(self, noise: int) -> None:
        self.arena = 0
        self.noise = noise
        self.held = 0

    def anonymous(self) -> int:
        reading, self.held = (1 << 30) + self.arena + self.held, 0
        return reading

    def run(self, items: list[Text]) -> list[np.ndarray]:
        self.arena += 10 << 20
        self.held = self.noise
        return [np.zeros(4, dtype=np.float32) for _ in items]


@pytest.mark.parametrize("noise", [0, 50 << 20])
def test_other_threads_memory_is_not_charged_to_the_model_once_per_shape(
    monkeypatch: pytest.MonkeyPatch, noise: int
) -> None:
    """40 new shapes grow the arena 400 MiB. Other threads holding 50 MiB at the end of each
    run used to add 50 MiB per shape (2.4 GiB in all): now at most one such burst is charged."""
    process = Process(noise)
    monkeypatch.setattr(batching, "process_anonymous", process.anonymous)
    encoder = Encoder()
    encoder.run = process.run  # type: ignore[method-assign]
    subject = Batcher(
        encoder,  # type: ignore[arg-type]
        ThreadPoolExecutor(1),
        max_batch_size=64,
        max_batch_tokens=100_000,
        max_queue=1000,
        measure_growth=True,
    )
    for length in range(1, 41):
        asyncio.run(subject.submit([Text(length)]))
    real = 400 << 20
    outputs = 40 * 16  # the runs' outputs are the requests', not the arena's
    assert real - outputs <= subject.stats.grown_bytes <= real + noise


def test_growth_after_an_unload_is_charged_in_full() -> None:
    """An unload lowers RSS below the highest reading: growth up to that old high is real."""
    meter = GrowthMeter()
    assert meter.charge(before=1000, after=1500) == 500
    meter.reset()  # a model was unloaded: RSS fell to 600
    assert meter.charge(before=600, after=900) == 300
