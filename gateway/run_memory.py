"""What a model's runs take from memory, and handing back what only its large runs needed.

A runtime keeps the working memory of the largest run it has done: ONNX Runtime's CPU arena
keeps its chunks, OpenVINO keeps intermediate buffers sized for the largest shape. On the
bundled all-MiniLM one run of 64 x 256 tokens kept 1.4 GiB (OpenVINO fp32) or 1.6 GiB (ONNX
Runtime) for good, ten times the model, and a run of 8 x 32 tokens 10-20 MiB.

So runs of at least `release_tokens` padded tokens are working memory: counted while it is held
(`working_bytes`, so the budget sees it), and given back (the session's release_memory, then
glibc's free pages) once the model has been idle a moment (the Batcher decides when). What stays
after that is charged as kept growth. Smaller runs keep what they grow, as before: it is charged
on a shape's first run (`grown_bytes`). A release costs the next large run its page faults
again (about a fifth of one 64 x 256 run on OpenVINO), hence only when idle, never between runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from gateway.memory import ArenaReading, GrowthMeter, release_free_heap

# Memory growth during a run below this is noise from other threads, not the model's arena.
GROWTH_NOISE_BYTES = 4 << 20


def held_bytes(arrays: Sequence[np.ndarray]) -> int:
    """Bytes of the buffers behind `arrays`, each counted once (views share their base)."""
    buffers: dict[int, int] = {}
    for array in arrays:
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        buffers[id(root)] = root.nbytes
    return sum(buffers.values())


class RunMemory:
    """One model's run memory, measured on the device thread (runs and releases happen there).

    Large runs never pass the growth meter: what they hold is gone at the release, and only
    what stays then is charged. Small shapes are measured outside a burst of large runs only:
    inside one, the large runs' free buffers serve them and their readings say nothing.
    """

    def __init__(
        self, arena: ArenaReading | None, growth: GrowthMeter, release_tokens: int = 0
    ) -> None:
        self.arena = arena  # None: growth is not measured
        self.growth = growth  # the device's: shared by its models
        self.release_tokens = release_tokens  # 0: nothing is released
        self.grown_bytes = 0  # kept by the runtime for good
        self.working_bytes = 0  # held by large runs until the next release
        self.releases = 0
        self.due = False  # a large run ran since the last release
        # (rows, padded length) shapes whose growth was measured: an arena grows when the shape
        # it runs is new, and reading /proc twice per run costs ~0.1 ms on the one-text path.
        self._measured: set[tuple[int, int]] = set()
        self._large_measured: set[tuple[int, int]] = set()  # since the last release
        self._before_large: int | None = None  # the reading before this burst's first run

    def run(
        self, shape: tuple[int, int], run: Callable[[], list[np.ndarray]]
    ) -> tuple[list[np.ndarray], float]:
        """`run()` (a batch of `shape`), its duration, and the memory it took charged."""
        large = 0 < self.release_tokens <= shape[0] * shape[1]
        if large:
            measure = shape not in self._large_measured
        else:
            measure = not self.due and shape not in self._measured
        arena = self.arena if measure else None
        before = arena.read() if arena else None
        started = time.perf_counter()
        outputs = run()
        seconds = time.perf_counter() - started
        if large and not self.due:  # the burst's first: no shape of it was measured yet
            self.due, self._before_large = True, before
        if arena is None:
            return outputs, seconds
        (self._large_measured if large else self._measured).add(shape)
        after = arena.read()
        if before is None or after is None:
            return outputs, seconds
        # The outputs are the requests' until they finish, not the runtime's arena.
        after -= held_bytes(outputs) if arena.holds_outputs else 0
        if large:
            self.working_bytes += max(after - before, 0)
        elif (grown := self.growth.charge(before, after)) > GROWTH_NOISE_BYTES:
            self.grown_bytes += grown
        return outputs, seconds

    def release(self, release_session: Callable[[], None]) -> None:
        """On the device thread, idle: hand back large runs' working memory and charge what
        stays of it."""
        if not self.due:
            return
        release_session()
        release_free_heap()
        after = self.arena.read() if self.arena else None
        before = self._before_large
        if before is not None and after is not None:
            kept = self.growth.charge(before, after)
            self.grown_bytes += kept if kept > GROWTH_NOISE_BYTES else 0
        self.working_bytes = 0
        self._large_measured.clear()
        self._before_large = None
        self.due = False
        self.releases += 1
