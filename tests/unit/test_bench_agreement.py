"""NaN or infinity in any vector fails the bench's agreement check and the fast-path figures.

Every check used to be `value < floor`, False for NaN, and the builtin min/max over rows drops
a NaN that is not first: a system returning NaN vectors passed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench import report
from bench.run import check_agreement
from gateway.backends.base import Placement
from tools import fast_path
from tools.fast_path import Case, measure


def _sample(system: str, vectors: np.ndarray, load: str | None = None) -> dict[str, Any]:
    return {
        "system": system,
        "model": "m",
        "workload": "w",
        "label": system,
        "load": load,
        "rep": 0,
        "error": None,
        "_vectors": vectors,
    }


def _cell() -> tuple[list[dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 16)).astype(np.float32)
    nan = ref.copy()
    nan[3] = np.nan
    inf = ref.copy()
    inf[5, 0] = np.inf
    cell = [
        _sample("raw", ref),
        _sample("raw-ov-bf16", nan),
        _sample("gateway", inf, "8x32"),
        _sample("st", ref.copy()),
    ]
    return cell, ref


def test_non_finite_vectors_disagree() -> None:
    cell, _ = _cell()
    check_agreement(cell)
    by_system = {s["system"]: s for s in cell}
    assert by_system["st"]["min_cos"] == pytest.approx(1.0)
    assert by_system["raw-ov-bf16"]["non_finite_rows"] == 1
    bad = report.disagreements({"samples": cell}, 0.999)
    assert len(bad) == 2, bad
    assert any("raw-ov-bf16" in line and "NaN or infinity" in line for line in bad)
    assert any("gateway" in line for line in bad)


def test_a_non_finite_reference_fails_every_row() -> None:
    cell, ref = _cell()
    cell[0]["_vectors"] = np.full_like(ref, np.nan)
    check_agreement(cell)
    assert len(report.disagreements({"samples": cell}, 0.999)) == len(cell)


def test_a_nan_rep_makes_the_row_disagree_whatever_its_order() -> None:
    assert report.worst_cos([0.9999, float("nan")]) != report.worst_cos([0.9999, float("nan")])
    assert report.worst_cos([float("nan"), 0.9999]) != 0.9999
    assert report.worst_cos([0.9999, 0.99995]) == 0.9999
    assert report.worst_cos([]) is None
    row = {
        "label": "x",
        "load": None,
        "reps": 1,
        "errors": [],
        "texts_per_s": 1.0,
        "tokens_per_s": 1.0,
        "p50_ms": None,
        "p99_ms": None,
        "client_cpu_per_wall": 1.0,
        "server_cpu_per_wall": None,
        "others_cpu_per_wall": 0.0,
        "min_cos": float("nan"),
    }
    assert "DISAGREES" in report.table([row], 0.999)


class FakeEncoder:
    """Raw outputs: one row per item; `nan_item` (if any) is all NaN when run alone."""

    def __init__(self, nan_item: int | None) -> None:
        placement = Placement("onnxruntime", "cpu", "fp32", "test")
        self.session = SimpleNamespace(placement=placement, get_providers=lambda: ["CPU"])
        self.nan_item = nan_item

    def run(self, items: list[int]) -> list[np.ndarray]:
        rows = [np.full(4, 1.0 + i, dtype=np.float32) for i in items]
        if len(items) == 1 and items[0] == self.nan_item:
            rows[0] = np.full(4, np.nan, dtype=np.float32)
        return rows


@pytest.mark.parametrize("kind", ["minilm fp32", "cross-encoder"])
def test_fast_path_figures_are_nan_when_one_output_is(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Item 3 of 6 is NaN (not the first row): min cos, alone-vs-batch and score differences
    are NaN, which fails `>=`/`<=` checks, and `non_finite` counts it."""
    built = iter([FakeEncoder(None), FakeEncoder(3)])  # the reference, then the fast path
    monkeypatch.setattr(fast_path, "build_encoder", lambda *args: next(built))
    case = Case(kind, None, {}, lambda encoder: list(range(6)))  # type: ignore[arg-type]
    monkeypatch.setattr(fast_path, "_bucket_batches", lambda items, step: [list(range(len(items)))])
    figures = measure(case, None, None)  # type: ignore[arg-type]
    assert figures.non_finite == 1
    assert not figures.min_cos_to_fp32 >= 0.999
    assert not figures.max_abs_alone_vs_batch <= 1e-5
    if kind == "cross-encoder":
        assert figures.max_score_diff is not None and not figures.max_score_diff <= 1e-2


def test_without_raw_the_reference_is_never_a_gateway_row() -> None:
    cell, _ = _cell()
    cell = [s for s in cell if s["system"] not in ("raw", "raw-ov-bf16")]  # gateway, st
    cell[0]["_vectors"] = cell[1]["_vectors"] * 2  # agrees with st
    assert check_agreement(cell) is None
    assert {s["agreement_reference"] for s in cell} == {"st"}


def test_only_gateway_rows_are_not_checked_against_themselves() -> None:
    cell, ref = _cell()
    cell = [_sample("gateway", ref, "8x32"), _sample("gateway-openai", ref, "8x32")]
    note = check_agreement(cell)
    assert note is not None and "NOT checked" in note
    assert all(s["min_cos"] is None and s["agreement_reference"] is None for s in cell)


def test_the_table_names_the_agreement_reference() -> None:
    cell, _ = _cell()
    check_agreement(cell)
    for s in cell:
        s.update(texts=8, tokens=80, wall_s=1.0, texts_per_s=8.0, tokens_per_s=80.0)
        s.update(p50_ms=None, p99_ms=None, client_cpu_s=1.0, server_cpu_s=None, others_cpu_s=0.0)
        s.update(extra={})
    rows = report.summarize(cell, [])
    assert "| min cos vs raw |" in report.table(rows, 0.999)
