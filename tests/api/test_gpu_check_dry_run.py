"""`make gpu-check`'s logic without a GPU: the --cpu-dry-run takes the CUDA placements on the
CPU-only onnxruntime (fp16 graphs converted and run on the CPU, and reported as run there),
measures parity, throughput and a memory-budget eviction, and writes its one JSON report."""

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
    # The CUDA path's fp16 graphs, which the CPU ran: every row says so.
    assert placements == {"onnxruntime fp16 on cpu"}
    assert all(row["providers"][:1] == ["CPUExecutionProvider"] for row in steps["parity"]["rows"])
    cross = next(r for r in steps["parity"]["rows"] if r["kind"] == "cross-encoder")
    assert cross["max_score_diff"] <= 1e-2
    raw = steps["raw_throughput"]["rows"]
    assert all(raw[k]["texts_per_s"] > 0 for k in ("cuda fp16", "cuda fp32", "cpu ort fp32"))
    assert raw["cuda fp16"]["placement"] == "onnxruntime fp16 on cpu"
    gateways = steps["gateway_throughput"]["rows"]
    assert gateways["gpu"]["texts_per_s"] > 0 and gateways["cpu"]["texts_per_s"] > 0
    # The "gpu" gateway took the CUDA path (fp16 on the CUDA backend) and reports the CPU ran it.
    gpu = gateways["gpu"]["compute"]
    assert (gpu["device"], gpu["precision"]) == ("cpu", "fp16"), gpu
    assert "no CUDA provider" in gpu["reason"]
    assert report["dry_run_not_covered"] and report["total_seconds"] <= 360
    evict = steps["vram_eviction"]
    assert evict["evicted"] is True and evict["budget_setting"] == "GATEWAY_MAX_RAM"
    assert evict["states_after"] == {"evict-minilm": "ready", "evict-nomic": "loaded"}
