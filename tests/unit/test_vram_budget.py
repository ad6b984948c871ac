"""The GPU token budget with a fake NVML (no GPU here): the probe and the cap."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.backends.vram import (
    MIN_BATCH_TOKENS,
    PROBE_LARGE,
    RESERVE_FRACTION,
    probe_bytes_per_token,
    probe_vram_per_token,
    token_budget,
)

MIB = 2**20


@dataclass
class View:
    total: int
    used: int
    used_by_this_process: int | None


class FakeGpu:
    """An arena that keeps the largest batch's activations, as ONNX Runtime's CUDA arena does."""

    def __init__(self, total: int, base: int, per_token: int, *, per_process: bool = True) -> None:
        self.total, self.base, self.per_token = total, base, per_token
        self.arena = 0
        self.per_process = per_process
        self.available = True

    def run(self, batch: int, tokens: int) -> None:
        self.arena = max(self.arena, batch * tokens * self.per_token)

    def memory(self) -> View | None:
        if not self.available:
            return None
        used = self.base + self.arena
        return View(self.total, used + 500 * MIB, used if self.per_process else None)


def test_probe_measures_the_arena_growth_per_token() -> None:
    gpu = FakeGpu(total=16 * 1024 * MIB, base=300 * MIB, per_token=40_000)
    assert probe_bytes_per_token(gpu.run, gpu) == 40_000
    without_per_process = FakeGpu(16 * 1024 * MIB, 300 * MIB, 40_000, per_process=False)
    assert probe_bytes_per_token(without_per_process.run, without_per_process) == 40_000


def test_probe_says_none_without_nvml_or_growth() -> None:
    gpu = FakeGpu(total=16 * 1024 * MIB, base=0, per_token=1000)
    gpu.available = False
    assert probe_bytes_per_token(gpu.run, gpu) is None
    warm = FakeGpu(total=16 * 1024 * MIB, base=0, per_token=1000)
    warm.run(*PROBE_LARGE)  # the arena is already as large as the probe's batch
    assert probe_bytes_per_token(warm.run, warm) is None


def test_budget_is_capped_by_free_vram() -> None:
    view = View(total=8 * 1024 * MIB, used=6 * 1024 * MIB, used_by_this_process=None)
    per_token = 100_000.0
    free = 2 * 1024 * MIB * (1 - RESERVE_FRACTION)
    assert token_budget(65_536, per_token, view) == int(free / per_token)
    assert token_budget(8_192, per_token, view) == 8_192  # the configured budget fits
    assert token_budget(8_192, None, view) == 8_192
    full = View(total=8 * 1024 * MIB, used=8 * 1024 * MIB, used_by_this_process=None)
    assert token_budget(8_192, per_token, full) == MIN_BATCH_TOKENS


class FakeEncoder:
    def __init__(self, gpu: FakeGpu, *, tokens: bool = True) -> None:
        self.gpu, self.tokens = gpu, tokens

    def sample_items(self, count: int, tokens: int) -> list[int] | None:
        return [tokens] * count if self.tokens else None

    def run(self, items: list[int]) -> None:
        if max(items) > 128:
            raise ValueError("graph traced for 128 positions")
        self.gpu.run(len(items), max(items))


def test_encoder_probe_skips_images_and_survives_a_failing_run() -> None:
    gpu = FakeGpu(total=16 * 1024 * MIB, base=0, per_token=1000)
    assert probe_vram_per_token(FakeEncoder(gpu, tokens=False), gpu) is None
    assert probe_vram_per_token(FakeEncoder(gpu), gpu) is None  # 256 > 128 positions
