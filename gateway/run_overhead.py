"""The fixed cost of one inference run, in tokens: what the batcher trades padding against.

On CPU, compute grows with padded tokens whatever the batch size, so padding short texts to a
long one's length is waste; but every run also has a fixed cost (dispatch, thread wake-ups,
pooling). The batcher cuts a batch where the padding would cost more than a run of its own.

The cost is measured at load from several interleaved timing rounds and the fastest of each
shape is kept: contention from other processes only ever adds time, so the minimum is the
estimate one noisy sample cannot swing. The result is clamped to a sane range. An operator (or a
test) pins it instead, per model in the registry (`run_overhead_tokens`) or process-wide
(`GATEWAY_RUN_OVERHEAD_TOKENS`); a pinned model then only runs the warm-ups (they size the
runtime's arena before its footprint is measured). `/admin/models` shows the value used, where it
came from, and what was measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

# Fixed cost of one run, in tokens of compute, when it cannot be measured (images: no padding).
DEFAULT_RUN_OVERHEAD_TOKENS = 16.0
# A measurement outside this range is noise, not the model: clamp it.
RUN_OVERHEAD_BOUNDS = (2.0, 64.0)
# Timing rounds per shape; each round runs the small and the large batch once.
SAMPLE_ROUNDS = 5
# The two shapes timed: one short input, and a batch of longer ones.
SMALL_SHAPE = (1, 8)
LARGE_SHAPE = (8, 32)

OverheadSource = Literal["registry", "setting", "measured", "default"]


class _Sized(Protocol):
    @property
    def length(self) -> int: ...


class TimedEncoder(Protocol):
    """What the measurement needs from an encoder: made-up inputs and a run."""

    def sample_items(self, count: int, tokens: int) -> Sequence[_Sized] | None: ...

    def run(self, items: Sequence[_Sized]) -> object: ...


@dataclass(frozen=True, slots=True)
class RunOverhead:
    """The value the batcher uses, where it came from, and what load-time timing measured."""

    tokens: float
    source: OverheadSource
    measured: float | None = None


def overhead_from_timings(small_s: float, large_s: float) -> float | None:
    """Tokens of compute one run costs beyond its tokens, from the two shapes' run times.

    None when the timings cannot separate a fixed cost from a per-token one (the larger batch
    was not slower): the caller falls back to the default.
    """
    small_tokens = SMALL_SHAPE[0] * SMALL_SHAPE[1]
    large_tokens = LARGE_SHAPE[0] * LARGE_SHAPE[1]
    per_token = (large_s - small_s) / (large_tokens - small_tokens)
    if per_token <= 0:
        return None
    fixed = small_s - small_tokens * per_token
    low, high = RUN_OVERHEAD_BOUNDS
    return min(max(fixed / per_token, low), high)


def measure_run_overhead(
    encoder: TimedEncoder,
    *,
    rounds: int = SAMPLE_ROUNDS,
    clock: Callable[[], float] = time.perf_counter,
) -> float | None:
    """The encoder's run overhead in tokens; None when it has no token inputs to time or the
    timings could not separate the two costs.

    One 8-token input against eight 32-token inputs separates the two costs (on this project's
    reference machine: MiniLM ~1.5 ms fixed and 0.086 ms a token, ~17 tokens; BERT-base ~24).
    Runs on the device thread at load. The shapes are interleaved round by round so a burst of
    contention hits both alike, and each shape's fastest run is kept.
    """
    shapes = _warm_up(encoder)
    if shapes is None:
        return None
    small, large = shapes
    small_times: list[float] = []
    large_times: list[float] = []
    for _ in range(max(rounds, 1)):
        for items, times in ((small, small_times), (large, large_times)):
            started = clock()
            encoder.run(items)
            times.append(clock() - started)
    return overhead_from_timings(min(small_times), min(large_times))


def _warm_up(encoder: TimedEncoder) -> tuple[Sequence[_Sized], Sequence[_Sized]] | None:
    """Run both shapes once (the first runs of a shape allocate); None without token inputs."""
    small = encoder.sample_items(*SMALL_SHAPE)
    large = encoder.sample_items(*LARGE_SHAPE)
    if small is None or large is None:
        return None
    encoder.run(small)
    encoder.run(large)
    return small, large


def run_overhead_at_load(
    encoder: TimedEncoder,
    *,
    registry: float | None,
    setting: float | None,
    measurable: bool = True,
) -> RunOverhead:
    """On the device thread at load: the pinned value after a warm-up, else a measurement.
    `measurable` False (a graph that runs one row at a time, where the large sample is eight
    runs, not one): the default after a warm-up, since the timings would mix the two costs."""
    if registry is not None or setting is not None or not measurable:
        _warm_up(encoder)
        return choose_run_overhead(None, registry=registry, setting=setting)
    return choose_run_overhead(measure_run_overhead(encoder), registry=None, setting=None)


def choose_run_overhead(
    measured: float | None, *, registry: float | None, setting: float | None
) -> RunOverhead:
    """The registry entry's pin wins, then the process-wide setting, then the measurement."""
    if registry is not None:
        return RunOverhead(registry, "registry", measured)
    if setting is not None:
        return RunOverhead(setting, "setting", measured)
    if measured is not None:
        return RunOverhead(measured, "measured", measured)
    return RunOverhead(DEFAULT_RUN_OVERHEAD_TOKENS, "default", None)
