"""`make gpu-check`'s logic without a GPU: the --cpu-dry-run takes the CUDA placements on the
CPU-only onnxruntime (fp16 graphs converted and run on the CPU), measures parity, throughput
and a memory-budget eviction, and writes its one JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools.paths import REPO


def test_gpu_check_dry_run_writes_a_passing_report(tmp_path: Path) -> None:
    output = tmp_path / "gpu-check.json"
    command = [sys.executable, "-m", "bench.gpu_check", "--cpu-dry-run", "--quick"]
    done = subprocess.run(
        [*command, "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    report = json.loads(output.read_text())
    assert done.returncode == 0, (report["failures"], done.stderr[-3000:])
    steps = report["steps"]
    assert report["dry_run"] is True and report["failures"] == []
    assert set(steps) == {
        "environment", "parity", "raw_throughput", "gateway_throughput", "vram_eviction"
    }  # fmt: skip
    placements = {row["placement"] for row in steps["parity"]["rows"]}
    assert placements == {"onnxruntime fp16"}  # the CUDA path's fp16 graphs, run on the CPU
    cross = next(r for r in steps["parity"]["rows"] if r["kind"] == "cross-encoder")
    assert cross["max_score_diff"] <= 1e-2
    assert all(steps["raw_throughput"][k] > 0 for k in ("cuda fp16", "cuda fp32", "cpu ort fp32"))
    assert steps["gateway_throughput"]["gpu"] > 0 and steps["gateway_throughput"]["cpu"] > 0
    evict = steps["vram_eviction"]
    assert evict["evicted"] is True and evict["budget_setting"] == "GATEWAY_MAX_RAM"
    assert evict["states_after"] == {"evict-minilm": "ready", "evict-nomic": "loaded"}
