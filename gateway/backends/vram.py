"""Batches on a GPU sized by a token budget that fits the free VRAM.

At load, the model runs a small and a large made-up batch; NVML's view of this process's GPU
memory before and after gives the bytes one more token of batch costs (activations, attention
scores: the arena keeps what the largest batch took). The batcher's token budget is then the
configured one, or fewer: what the free VRAM, less a reserve, can hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

RESERVE_FRACTION = 0.2  # VRAM left for other models' loads and the CUDA context
MIN_BATCH_TOKENS = 512  # below this a GPU is better used one text at a time anyway
PROBE_SMALL = (8, 32)  # (batch, tokens): what measure_run_overhead already ran
PROBE_LARGE = (32, 256)


class GpuMemoryView(Protocol):
    @property
    def total(self) -> int: ...

    @property
    def used(self) -> int: ...

    @property
    def used_by_this_process(self) -> int | None: ...


class MemorySource(Protocol):
    def memory(self) -> GpuMemoryView | None: ...


def _mine(view: GpuMemoryView) -> int:
    return view.used_by_this_process if view.used_by_this_process is not None else view.used


def probe_bytes_per_token(run: Callable[[int, int], object], nvml: MemorySource) -> float | None:
    """Bytes of VRAM one more token of batch costs; `run(batch, tokens)` runs a made-up batch.

    None when NVML cannot tell (no GPU, no driver) or the arena did not grow (already large).
    """
    run(*PROBE_SMALL)
    before = nvml.memory()
    if before is None:
        return None
    run(*PROBE_LARGE)
    after = nvml.memory()
    if after is None:
        return None
    grown = _mine(after) - _mine(before)
    tokens = PROBE_LARGE[0] * PROBE_LARGE[1] - PROBE_SMALL[0] * PROBE_SMALL[1]
    return grown / tokens if grown > 0 else None


def token_budget(configured: int, bytes_per_token: float | None, view: GpuMemoryView | None) -> int:
    """The batch token budget: `configured`, capped by what the free VRAM can hold."""
    if bytes_per_token is None or view is None:
        return configured
    free = max(view.total - view.used, 0) * (1 - RESERVE_FRACTION)
    fits = int(free / bytes_per_token)
    budget = max(min(configured, fits), MIN_BATCH_TOKENS)
    if budget < configured:
        log.info(
            "batch token budget %d (configured %d): %.0f MiB free VRAM at %.0f KiB a token",
            budget,
            configured,
            free / 2**20,
            bytes_per_token / 2**10,
        )
    return budget


class ProbedEncoder(Protocol):
    def sample_items(self, count: int, tokens: int) -> list[Any] | None: ...

    def run(self, items: Any) -> Any: ...


def probe_vram_per_token(encoder: ProbedEncoder, nvml: MemorySource) -> float | None:
    """probe_bytes_per_token for an encoder of tokens (None for images: fixed-size inputs)."""
    if encoder.sample_items(1, 1) is None:
        return None

    def run(batch: int, tokens: int) -> object:
        return encoder.run(encoder.sample_items(batch, tokens))

    try:
        return probe_bytes_per_token(run, nvml)
    except Exception as exc:  # e.g. a graph traced for fewer positions than the probe's
        log.warning("VRAM probe failed (%s); keeping the configured batch token budget", exc)
        return None
