"""The bench's target lines: the right gateway load over the right row, met or not."""

from __future__ import annotations

from typing import Any

from bench.report import latency_target_line, target_lines


def _row(system: str, load: str | None, **ratios: float) -> dict[str, Any]:
    return {"system": system, "load": load, **{f"x_gateway_{k}": v for k, v in ratios.items()}}


def test_each_target_uses_its_own_gateway_load() -> None:
    rows = [
        _row("st", None, **{"8x32": 0.25}),  # the gateway at 8x32 is 4x sentence-transformers
        _row("raw", None, **{"8x32": 0.6}),
        _row("infinity", "8x32", **{"8x32": 0.5}),
        _row("raw-ov-bf16", None, **{"64x1": 1.25, "8x32": 0.9}),  # gateway 64x1 = 0.8x raw
    ]
    lines = target_lines("sentences", rows, "8x32")
    assert lines == [
        "- gateway 8x32 / st: 4.00x (target >= 2.5x: met)",
        "- gateway 8x32 / raw: 1.67x (target >= 2.0x: NOT met)",
        "- gateway 8x32 / infinity: 2.00x (target >= 2.5x: NOT met)",
        "- gateway 64x1 / raw-ov-bf16: 0.80x (target >= 0.9x: NOT met)",
    ]
    assert target_lines("passages", [], "8x8") == ["- gateway 8x8 / st: not measured"]


def test_latency_target_compares_with_the_raw_backend() -> None:
    rows = [
        {"system": "gateway", "p50_ms": 2.6, "reps": 3},
        {"system": "raw-ov-bf16", "p50_ms": 2.0, "reps": 3},
        {"system": "raw", "p50_ms": 1.0, "reps": 3},
    ]
    assert (
        latency_target_line(rows) == "- gateway p50 / raw-ov-bf16 p50: 1.30x (target <= 1.3x: met)"
    )
    assert "not measured" in latency_target_line(rows[:1])
