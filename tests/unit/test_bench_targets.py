"""The bench's target lines: the right gateway row and load over the right row, met or not."""

from __future__ import annotations

from typing import Any

from bench.targets import gateway_compute, latency_target_lines, rep_ratio, target_lines

OV_BF16 = {"backend": "openvino", "device": "cpu", "precision": "bf16", "reason": "auto: AMX"}
ORT_FP32 = {"backend": "onnxruntime", "device": "cpu", "precision": "fp32", "reason": "auto"}


def _sample(system: str, load: str | None, rep: int, rate: float, error: str | None = None):
    return {"system": system, "load": load, "rep": rep, "texts_per_s": rate, "error": error}


def _rates(system: str, load: str | None, *rates: float) -> list[dict[str, Any]]:
    return [_sample(system, load, rep, rate) for rep, rate in enumerate(rates)]


def test_each_target_uses_its_own_gateway_row_and_load() -> None:
    samples = [
        *_rates("gateway", "8x32", 400.0, 400.0, 400.0),
        *_rates("gateway", "64x1", 240.0, 240.0, 240.0),
        *_rates("gateway-lean", "64x1", 270.0, 285.0, 300.0),
        *_rates("st", None, 100.0, 100.0, 100.0),
        *_rates("raw", None, 240.0, 240.0, 240.0),
        *_rates("infinity", "8x32", 200.0, 200.0, 200.0),
        *_rates("raw-ov-bf16", None, 300.0, 300.0, 300.0),
    ]
    assert target_lines("sentences", samples, "8x32", OV_BF16) == [
        "- gateway 8x32 / st: 4.00x (target >= 2.5x: met)",
        "- gateway 8x32 / raw: 1.67x (target >= 2.0x: NOT met)",
        "- gateway 8x32 / infinity: 2.00x (target >= 2.5x: NOT met)",
        "- gateway 64x1 / raw-ov-bf16: 0.80x (target >= 0.9x: NOT met)",
        "- gateway-lean 64x1 / raw-ov-bf16: 0.95x (target >= 0.9x: met)",
    ]
    assert target_lines("passages", [], "8x8", OV_BF16) == ["- gateway 8x8 / st: not measured"]


def test_ratios_are_taken_per_rep_then_the_median() -> None:
    # The machine slows down in rep 1: per-rep ratios see it, a ratio of medians would not.
    samples = [
        *_rates("gateway", "64x1", 100.0, 50.0, 100.0),
        *_rates("raw-ov-bf16", None, 100.0, 50.0, 200.0),
    ]
    assert rep_ratio(samples, ("gateway", "64x1"), ("raw-ov-bf16", None)) == 1.0


def test_failed_reps_are_left_out() -> None:
    samples = [
        *_rates("gateway", "64x1", 100.0, 100.0),
        _sample("raw-ov-bf16", None, 0, 200.0),
        _sample("raw-ov-bf16", None, 1, 0.0, error="RuntimeError: boom"),
    ]
    assert rep_ratio(samples, ("gateway", "64x1"), ("raw-ov-bf16", None)) == 0.5
    assert rep_ratio(samples, ("gateway", "64x1"), ("st", None)) is None


def test_latency_targets_compare_both_clients_with_the_raw_backend() -> None:
    rows = [
        {"system": "gateway", "p50_ms": 2.6, "reps": 3},
        {"system": "gateway-lean", "p50_ms": 2.8, "reps": 3},
        {"system": "raw-ov-bf16", "p50_ms": 2.0, "reps": 3},
        {"system": "raw", "p50_ms": 1.0, "reps": 3},
    ]
    assert latency_target_lines(rows, OV_BF16) == [
        "- gateway p50 / raw-ov-bf16 p50: 1.30x (target <= 1.3x: met)",
        "- gateway-lean p50 / raw-ov-bf16 p50: 1.40x (target <= 1.3x: NOT met)",
    ]
    assert all("not measured" in line for line in latency_target_lines(rows[:1], OV_BF16))


def test_the_raw_backend_is_the_row_of_what_the_gateway_chose() -> None:
    """`auto` without OpenVINO (or on a CPU without bf16) runs ORT fp32: the 64x1 and latency
    targets then compare with raw ORT, not with raw OpenVINO bf16."""
    samples = [
        *_rates("gateway", "64x1", 90.0),
        *_rates("raw", None, 100.0),
        *_rates("raw-ov-bf16", None, 300.0),
    ]
    lines = target_lines("sentences", samples, "8x32", ORT_FP32)
    only = "the gateway row: gateway-lean not measured"
    assert f"- gateway 64x1 / raw: 0.90x (target >= 0.9x: met; {only})" in lines
    rows = [
        {"system": "gateway", "p50_ms": 1.2, "reps": 3},
        {"system": "raw", "p50_ms": 1.0, "reps": 3},
        {"system": "raw-ov-bf16", "p50_ms": 0.5, "reps": 3},
    ]
    assert latency_target_lines(rows, ORT_FP32) == [
        f"- gateway p50 / raw p50: 1.20x (target <= 1.3x: met; {only})"
    ]


def test_a_gateway_compute_no_raw_row_runs_is_not_compared_with_the_wrong_one() -> None:
    samples = [*_rates("gateway", "64x1", 90.0), *_rates("raw-ov-bf16", None, 100.0)]
    cuda = {"backend": "onnxruntime", "device": "cuda", "precision": "fp16"}
    for compute in (cuda, None):
        lines = target_lines("sentences", samples, "8x32", compute)
        raw_lines = [line for line in lines if "64x1" in line]
        assert raw_lines and all("no raw row runs: not measured" in line for line in raw_lines)
        rows = [{"system": "gateway", "p50_ms": 1.0, "reps": 1}]
        assert "no raw row runs" in latency_target_lines(rows, compute)[0]


def test_the_lean_row_alone_measures_the_64x1_and_latency_targets() -> None:
    """`--systems raw,gateway-lean`: the lean client's row is the one measured, and says so."""
    samples = [*_rates("gateway-lean", "64x1", 95.0, 96.0), *_rates("raw", None, 100.0, 100.0)]
    lines = target_lines("sentences", samples, "8x32", ORT_FP32)
    only = "the gateway-lean row: gateway not measured"
    assert lines[-1] == f"- gateway-lean 64x1 / raw: 0.95x (target >= 0.9x: met; {only})"
    assert not any("64x1" in line and "not measured)" not in line for line in lines[:-1])
    rows = [
        {"system": "gateway-lean", "p50_ms": 1.5, "reps": 3},
        {"system": "raw", "p50_ms": 1.0, "reps": 3},
    ]
    assert latency_target_lines(rows, ORT_FP32) == [
        f"- gateway-lean p50 / raw p50: 1.50x (target <= 1.3x: NOT met; {only})"
    ]
    # Neither client ran: one line for the target, naming both rows.
    assert target_lines("sentences", samples[-2:], "8x32", ORT_FP32)[-1] == (
        "- gateway or gateway-lean 64x1 / raw: not measured"
    )


def test_the_report_takes_the_compute_of_whichever_gateway_row_ran() -> None:
    assert gateway_compute({"gateway-lean": ORT_FP32}) == ORT_FP32
    assert gateway_compute({"gateway": OV_BF16, "gateway-lean": ORT_FP32}) == OV_BF16
    assert gateway_compute({"gateway-ov-fp32": OV_BF16}) is None
