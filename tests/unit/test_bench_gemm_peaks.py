"""The bench's GEMM peaks: the bf16 one is measured only on CPUs with bf16 units (elsewhere torch
emulates bf16, one 2048^3 product taking a minute, for a peak no backend there reaches)."""

from __future__ import annotations

import pytest

from bench import efficiency


def test_no_bf16_peak_without_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficiency, "GEMM_N", 64)
    peaks = efficiency.gemm_peaks(1, flags=frozenset({"avx2", "fma"}))
    assert set(peaks) == {"fp32"} and peaks["fp32"] > 0


def test_a_bf16_peak_with_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficiency, "GEMM_N", 64)
    peaks = efficiency.gemm_peaks(1, flags=frozenset({"amx_bf16", "avx512f"}))
    assert set(peaks) == {"fp32", "bf16"} and peaks["bf16"] > 0
