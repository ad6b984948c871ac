"""The benchmark's own code paths on a tiny subset, so `make bench` never rots.

`python -m bench --quick` runs for real (the gateway and the one-at-a-time loop as servers,
httpx clients, raw ONNX Runtime and sentence-transformers in-process) on all-MiniLM-L6-v2 with a
handful of texts; Infinity is left out because it needs its own venv. Speed is not asserted
(benchmarks measure, tests do not time); sanity is: every row ran, the numbers are
consistent with each other, and every system returned the same vectors as raw ONNX Runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench import report
from bench.run import check_agreement
from gateway.backends.selection import bf16_support, cpu_flags
from tools.paths import REPO

# The raw OpenVINO row of what the gateway's `auto` picks here (bf16 needs AMX or AVX512-BF16),
# so the 64x1 and one-text targets have their baseline on any CPU.
RAW_OV = "raw-ov-bf16" if bf16_support(cpu_flags()) else "raw-ov-fp32"
SYSTEMS = f"raw,{RAW_OV},st,gateway,gateway-lean,gateway-openai,loop"
SENTENCES = 24
PASSAGES = 4
BENCH_LIMIT_S = 840
# The module fixture runs the whole quick benchmark inside the first test's time limit.
pytestmark = pytest.mark.timeout(BENCH_LIMIT_S + 60)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    output = tmp_path_factory.mktemp("bench") / "result.json"
    command = [
        sys.executable, "-m", "bench", "--quick", "--models", "minilm", "--systems", SYSTEMS,
        "--sentences", str(SENTENCES), "--passages", str(PASSAGES), "--latency-requests", "5",
        "--output", str(output),
    ]  # fmt: skip
    # Generous: a busy machine slows the run; only a hung benchmark fails.
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=BENCH_LIMIT_S)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    return json.loads(output.read_text()), done.stdout


def test_every_system_and_load_ran_once(quick_run: tuple[dict, str]) -> None:
    result, stdout = quick_run
    expected = {
        # 8x32 does not fit 24 texts: it becomes 8 clients x 3 texts, and says so.
        "sentences": {
            ("raw", None), (RAW_OV, None), ("st", None), ("gateway", "1x1"),
            ("gateway", "8x1"), ("gateway", "64x1"), ("gateway", "8x3"), ("gateway-openai", "8x3"),
            ("gateway-lean", "64x1"), ("loop", "64x1"), ("loop", "8x3"),
        },
        # 4 passages: 8x32 fits to 8x1, which is measured once.
        "passages": {
            ("raw", None), (RAW_OV, None), ("st", None), ("gateway", "1x1"),
            ("gateway", "8x1"), ("gateway", "64x1"), ("gateway-openai", "8x1"),
            ("gateway-lean", "64x1"), ("loop", "64x1"), ("loop", "8x1"),
        },
    }  # fmt: skip
    for workload, rows_expected in expected.items():
        rows = result["cells"]["minilm"][workload]["rows"]
        assert {(r["system"], r["load"]) for r in rows} == rows_expected
        assert all(r["reps"] == 1 and not r["errors"] for r in rows), rows
    assert "## minilm (all-minilm-fp32) x sentences" in stdout
    assert "% of fp32 peak" in stdout and "- gateway 8x3 / st: " in stdout
    efficiency = result["cells"]["minilm"]["sentences"]["efficiency"]
    assert {e["load"] for e in efficiency} >= {None, "8x3"}
    assert all(e["useful_gflops"] > 0 and e["share_fp32_peak"] > 0 for e in efficiency)
    assert "| (a) gateway /api/embed, auto | 64x1 |" in stdout
    assert "| (a) gateway /api/embed, auto, lean client | 64x1 |" in stdout
    assert f"- gateway-lean 64x1 / {RAW_OV}: " in stdout
    assert f"- gateway-lean p50 / {RAW_OV} p50: " in stdout


def test_numbers_are_consistent(quick_run: tuple[dict, str]) -> None:
    result, _ = quick_run
    for workload, size in (("sentences", SENTENCES), ("passages", PASSAGES)):
        cell = result["cells"]["minilm"][workload]
        assert cell["workload"]["texts"] == size
        mean_tokens = cell["workload"]["tokens"] / size
        for row in cell["rows"]:
            assert row["texts"] == size
            assert row["texts_per_s"] > 0
            assert row["tokens_per_s"] == pytest.approx(row["texts_per_s"] * mean_tokens)
            if row["load"] is not None:  # over HTTP: per-request latencies and server CPU
                assert 0 < row["p50_ms"] <= row["p99_ms"]
                assert row["server_cpu_per_wall"] is not None
            if row["system"].startswith("gateway"):
                assert row["padding_ratio"] >= 1.0  # padded / real tokens, from exact counts
                assert row["mean_batch"] >= 1
        gateway = {r["load"]: r for r in cell["rows"] if r["system"] == "gateway"}
        for base in cell["baselines"]:
            if base in gateway:  # the gateway against itself, in the same rep
                assert gateway[base][f"x_gateway_{base}"] == pytest.approx(1.0)
    # The gateway's own count of embedded tokens matches the bench's tokenizer.
    for sample in result["samples"]:
        if sample["system"] in {"gateway", "gateway-lean", "loop"}:
            assert sample["extra"]["server_tokens"] == sample["tokens"]


def test_every_system_returns_the_reference_vectors(quick_run: tuple[dict, str]) -> None:
    result, _ = quick_run
    for workload in ("sentences", "passages"):
        samples = [s for s in result["samples"] if s["workload"] == workload]
        assert samples
        for sample in samples:
            assert sample["agreement_reference"] == "raw"
            assert sample["min_cos"] >= 0.999, sample
            # Different texts must be told apart, or the check above would prove nothing.
            assert sample["cross_text_cos_median"] < 0.9
    assert report.disagreements(result, 0.999) == []


def test_single_text_latency_for_every_system(quick_run: tuple[dict, str]) -> None:
    result, stdout = quick_run
    rows = {r["system"]: r for r in result["latency"]["minilm"]}
    assert set(rows) == set(SYSTEMS.split(","))
    for row in rows.values():
        assert row["reps"] == 1 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert rows["raw"]["x_raw_p50"] == pytest.approx(1.0)
    assert "one short text" in stdout


def test_agreement_check_flags_a_system_that_mixes_up_rows() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 32)).astype(np.float32)
    swapped = vectors[[1, 0, 2, 3, 4, 5]]

    def sample(system: str, rows: np.ndarray) -> dict:
        return {"system": system, "label": system, "model": "m", "workload": "w", "load": None,
                "_vectors": rows, "error": None}  # fmt: skip

    cell = [sample("fast", swapped), sample("raw", vectors), sample("scaled", 3 * vectors)]
    check_agreement(cell)
    by_system = {s["system"]: s for s in cell}
    assert by_system["raw"]["min_cos"] == pytest.approx(1.0)
    assert by_system["scaled"]["min_cos"] == pytest.approx(1.0)  # cosine ignores the norm
    assert by_system["fast"]["min_cos"] < 0.5
    flagged = report.disagreements({"samples": cell}, 0.999)
    assert len(flagged) == 1 and "fast" in flagged[0]


def test_results_folder_is_kept_but_its_json_ignored() -> None:
    assert (REPO / "bench" / "results" / ".gitkeep").is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "bench/results/x.json"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0
