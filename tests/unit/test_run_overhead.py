"""The batcher's run overhead: measured robustly, bounded, and pinned by registry or setting.

A scripted clock stands in for the device: each run "takes" a fixed cost plus a cost per padded
token, and chosen runs are slowed down as a busy machine would slow them. What is asserted is
what the code decides from those timings, never how fast this machine is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from gateway.batching import _Entry, _Job, cut_batch
from gateway.run_overhead import (
    DEFAULT_RUN_OVERHEAD_TOKENS,
    RUN_OVERHEAD_BOUNDS,
    RunOverhead,
    choose_run_overhead,
    measure_run_overhead,
    overhead_from_timings,
    run_overhead_at_load,
)

FIXED_S = 0.0015  # a MiniLM-like run: 1.5 ms fixed, 0.086 ms a token -> ~17.4 tokens
PER_TOKEN_S = 0.000086
TRUE_OVERHEAD = FIXED_S / PER_TOKEN_S


@dataclass(frozen=True)
class Tokens:
    length: int


@dataclass
class ScriptedDevice:
    """An encoder whose runs advance a fake clock; `slow_runs` maps run index -> extra seconds."""

    slow_runs: dict[int, float] = field(default_factory=dict)
    has_tokens: bool = True
    now: float = 0.0
    runs: int = 0

    def clock(self) -> float:
        return self.now

    def sample_items(self, count: int, tokens: int) -> list[Tokens] | None:
        return [Tokens(tokens)] * count if self.has_tokens else None

    def run(self, items: Sequence[Tokens]) -> None:
        padded = len(items) * max(item.length for item in items)
        self.now += FIXED_S + PER_TOKEN_S * padded + self.slow_runs.get(self.runs, 0.0)
        self.runs += 1


def test_quiet_device_measures_the_true_overhead() -> None:
    device = ScriptedDevice()
    measured = measure_run_overhead(device, clock=device.clock)
    assert measured == pytest.approx(TRUE_OVERHEAD)
    assert device.runs == 2 + 2 * 5  # two warm-ups, then five rounds of both shapes


@pytest.mark.parametrize("slowed", [2, 3, 6, 11])
def test_one_slow_sample_does_not_swing_it(slowed: int) -> None:
    """Runs 2.. are timed; a 50 ms stall on any one of them leaves the result unchanged."""
    device = ScriptedDevice(slow_runs={slowed: 0.05})
    assert measure_run_overhead(device, clock=device.clock) == pytest.approx(TRUE_OVERHEAD)


def test_contention_on_most_rounds_still_finds_the_quiet_ones() -> None:
    stalls = {run: 0.01 * run for run in range(2, 10)}  # only the last round runs quietly
    device = ScriptedDevice(slow_runs=stalls)
    assert measure_run_overhead(device, clock=device.clock) == pytest.approx(TRUE_OVERHEAD)


def test_no_token_inputs_means_nothing_measured() -> None:
    device = ScriptedDevice(has_tokens=False)
    assert measure_run_overhead(device, clock=device.clock) is None
    assert device.runs == 0


@pytest.mark.parametrize(
    ("small_s", "large_s", "expected"),
    [
        (0.010, 0.010, None),  # the larger batch was not slower: no per-token cost to divide by
        (0.010, 0.005, None),
        (0.0001, 0.05, RUN_OVERHEAD_BOUNDS[0]),  # nearly no fixed cost: clamped up
        (0.5, 0.5001, RUN_OVERHEAD_BOUNDS[1]),  # nearly all fixed cost: clamped down
    ],
)
def test_timings_are_bounded(small_s: float, large_s: float, expected: float | None) -> None:
    assert overhead_from_timings(small_s, large_s) == expected


def test_a_pinned_model_is_warmed_up_not_timed() -> None:
    device = ScriptedDevice()
    pinned = run_overhead_at_load(device, registry=None, setting=12.0)
    assert pinned == RunOverhead(12.0, "setting", None)
    assert device.runs == 2  # one run of each shape: the arena is sized, nothing is timed
    measured = run_overhead_at_load(ScriptedDevice(), registry=None, setting=None)
    assert measured.source == "measured" and measured.tokens == measured.measured


def test_a_graph_run_a_row_at_a_time_is_warmed_up_and_given_the_default() -> None:
    """Its large sample is eight runs, not one: timing it would mix the two costs."""
    device = ScriptedDevice()
    chosen = run_overhead_at_load(device, registry=None, setting=None, measurable=False)
    assert chosen == RunOverhead(DEFAULT_RUN_OVERHEAD_TOKENS, "default", None)
    assert device.runs == 2


def test_registry_pin_wins_then_setting_then_measurement() -> None:
    assert choose_run_overhead(17.0, registry=4.0, setting=8.0) == RunOverhead(
        4.0, "registry", 17.0
    )
    assert choose_run_overhead(17.0, registry=None, setting=8.0) == RunOverhead(
        8.0, "setting", 17.0
    )
    assert choose_run_overhead(17.0, registry=None, setting=None) == RunOverhead(
        17.0, "measured", 17.0
    )
    assert choose_run_overhead(None, registry=None, setting=None) == RunOverhead(
        DEFAULT_RUN_OVERHEAD_TOKENS, "default", None
    )
    assert choose_run_overhead(None, registry=0.0, setting=None).tokens == 0.0


# -- the cut the batcher makes from a given overhead ---------------------------------------------


def entries(lengths: Sequence[int]) -> list[_Entry]:
    job = _Job(future=None, results=[None] * len(lengths), remaining=len(lengths))  # type: ignore[arg-type]
    return [_Entry(job, i, Tokens(length)) for i, length in enumerate(lengths)]


def cut_lengths(lengths: Sequence[int], overhead: float, max_size: int = 64) -> list[int]:
    batch = cut_batch(
        entries(lengths), max_size=max_size, max_tokens=16384, overhead_tokens=overhead
    )
    return [entry.length for entry in batch]


def test_cut_groups_lengths_whose_padding_costs_less_than_a_run() -> None:
    lengths = [10, 11, 12, 40, 41]
    # Adding 40 to [10, 11, 12] pads three items by 28 tokens each: 84 > 16, so a new group.
    assert cut_lengths(lengths, overhead=16.0) == [10, 11, 12]
    # With runs this expensive, all five share one run.
    assert cut_lengths(lengths, overhead=100.0) == [10, 11, 12, 40, 41]
    # With free runs, only equal lengths share (10 is the oldest, so its group runs).
    assert cut_lengths(lengths, overhead=0.0) == [10]


def test_the_oldest_entry_always_runs() -> None:
    assert cut_lengths([40, 10, 11, 12, 41], overhead=16.0) == [40, 41]


def test_max_size_closes_a_group() -> None:
    assert cut_lengths([5] * 10, overhead=16.0, max_size=4) == [5, 5, 5, 5]
