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

from gateway.backends import bucket_length
from gateway.batching import Batcher
from gateway.memory import ArenaReading, GrowthMeter, arena_reading


@dataclass(frozen=True)
class Text:
    length: int


class Encoder:
    spec: Any = SimpleNamespace(name="growth")
    batch_invariant = True

    def run(self, items: list[Text]) -> list[np.ndarray]:
        return [np.zeros(4, dtype=np.float32) for _ in items]


def metered(run: Any, arena: ArenaReading | None) -> Batcher:
    """A batcher whose encoder runs `run`, measuring growth with `arena`."""
    encoder = Encoder()
    encoder.run = run  # type: ignore[method-assign]
    return Batcher(
        encoder,  # type: ignore[arg-type]
        ThreadPoolExecutor(1),
        max_batch_size=64,
        max_batch_tokens=100_000,
        max_queue=1000,
        arena=arena,
    )


@pytest.mark.parametrize(
    ("bucket", "measured"),
    [(partial(bucket_length, step=8), 2), (None, 3)],  # 17 and 20 share the 24-token bucket
)
def test_growth_is_measured_once_per_padded_shape(bucket: Any, measured: int) -> None:
    reads: list[int] = []
    subject = Batcher(
        Encoder(),  # type: ignore[arg-type]
        ThreadPoolExecutor(1),
        max_batch_size=8,
        max_batch_tokens=10_000,
        max_queue=100,
        arena=ArenaReading(lambda: reads.append(1) or 0, holds_outputs=True),
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
def test_other_threads_memory_is_not_charged_to_the_model_once_per_shape(noise: int) -> None:
    """40 new shapes grow the arena 400 MiB. Other threads holding 50 MiB at the end of each
    run used to add 50 MiB per shape (2.4 GiB in all): now at most one such burst is charged."""
    process = Process(noise)
    subject = metered(process.run, ArenaReading(process.anonymous, holds_outputs=True))
    for length in range(1, 41):
        asyncio.run(subject.submit([Text(length)]))
    real = 400 << 20
    outputs = 40 * 16  # the runs' outputs are the requests', not the arena's
    assert real - outputs <= subject.memory.grown_bytes <= real + noise


def test_growth_after_an_unload_is_charged_in_full() -> None:
    """An unload lowers RSS below the highest reading: growth up to that old high is real."""
    meter = GrowthMeter()
    assert meter.charge(before=1000, after=1500) == 500
    meter.reset()  # a model was unloaded: RSS fell to 600
    assert meter.charge(before=600, after=900) == 300


@dataclass(frozen=True)
class GpuView:
    total: int
    used: int
    used_by_this_process: int | None


class FakeNvml:
    """A GPU whose runtime arena grows 64 MiB per new shape; other processes use 1 GiB."""

    def __init__(self, per_process: bool) -> None:
        self.arena = 0
        self.per_process = per_process

    def memory(self) -> GpuView:
        mine = (2 << 30) + self.arena
        return GpuView(80 << 30, (1 << 30) + mine, mine if self.per_process else None)

    def run(self, items: list[Text]) -> list[np.ndarray]:
        self.arena += 64 << 20
        return [np.zeros(4096, dtype=np.float32) for _ in items]  # host outputs: not VRAM


@pytest.mark.parametrize("per_process", [True, False])
def test_cuda_arena_growth_is_read_from_nvml(per_process: bool) -> None:
    """On CUDA a new shape's growth is device memory (NVML: this process's, else the device's),
    so it counts in the VRAM budget; the host outputs are not subtracted from it."""
    gpu = FakeNvml(per_process)
    subject = metered(gpu.run, arena_reading("cuda", gpu))  # type: ignore[arg-type]
    for length in (8, 16, 8, 24):  # three shapes: 8 runs twice
        asyncio.run(subject.submit([Text(length)] * 4))
    assert subject.memory.grown_bytes == 3 * (64 << 20)


def test_without_nvml_cuda_growth_is_not_measured() -> None:
    no_gpu = SimpleNamespace(memory=lambda: None)
    assert arena_reading("cuda", no_gpu) is None  # type: ignore[arg-type]
    cpu = arena_reading("cpu", no_gpu)  # type: ignore[arg-type]
    assert cpu is not None and cpu.holds_outputs


class FlakyNvml(FakeNvml):
    """Fails (None, as NVML's wrapper answers a failed query) the query numbered `fail_at`."""

    def __init__(self) -> None:
        super().__init__(per_process=True)
        self.queries = 0
        self.fail_at = 0

    def memory(self) -> GpuView:  # type: ignore[override]
        self.queries += 1
        return None if self.queries == self.fail_at else super().memory()  # type: ignore[return-value]


def test_a_failed_nvml_read_charges_nothing() -> None:
    """A failed read is no reading: read as 0, the process's whole GPU memory was charged as
    one shape's growth."""
    gpu = FlakyNvml()
    arena = arena_reading("cuda", gpu)  # type: ignore[arg-type]
    assert arena is not None
    gpu.fail_at = gpu.queries + 1  # the reading before the run fails
    subject = metered(gpu.run, arena)
    asyncio.run(subject.submit([Text(8)]))
    assert subject.memory.grown_bytes == 0  # read as 0, all 2 GiB of it counted as growth
