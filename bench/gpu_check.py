"""`make gpu-check`: the CUDA path, checked end to end on a machine with an NVIDIA GPU.

One run, one JSON report (bench/results/gpu-check-<time>.json), in under 6 minutes counted from
the start, the install included (the start time survives the re-start; every subprocess and
step is bounded by what is left; a run past 360 s fails):
  1. install: swaps onnxruntime for the `gpu` extra (onnxruntime-gpu with CUDA/cuDNN wheels,
     onnx) in this venv, then starts itself again;
  2. environment: the CUDA provider listed, NVML answering, `auto` placing on cuda;
  3. parity and batch invariance of every model kind (the test suite's exports) on the CUDA
     placement `auto` picks (fp16) and on CUDA fp32, against the CPU exact mode (ORT fp32);
  4. throughput of MiniLM on short sentences: the raw backend in-process (CUDA fp16, CUDA
     fp32, CPU ORT fp32) and through the gateway (8 clients x 32 texts), GPU vs CPU `auto`;
  5. VRAM eviction: a gateway whose GATEWAY_MAX_VRAM fits the larger of two models but not
     both; loading the second must evict the first, with NVML's figures recorded.
Every row names the device that ran it (bench/gpu_steps.py), and on a GPU run any CUDA-labelled
figure that did not run on CUDA, any NaN or infinity, is a failure (bench/gpu_verdicts.py).

`--cpu-dry-run` checks the logic here without a GPU: no install; the CUDA placements on the
CPU-only onnxruntime (fp16 graphs converted and run on the CPU, which the placements report as
device cpu); a "gpu" gateway that takes the CUDA path (bench/dry_cuda_gateway.py) and must
report that the CPU ran it; the host-memory budget for step 5. Not covered without a GPU (the
report's `dry_run_not_covered` says so): IO binding, CUDA speed, NVML's VRAM token budget,
GATEWAY_MAX_VRAM accounting and /api/ps size_vram.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench import gpu_steps
from bench.gpu_verdicts import TOTAL_S, deadline_problems

REPO = Path(__file__).resolve().parents[1]
# time.time() at the start, across the re-start; `make gpu-check` sets it before its setup-test.
STARTED_ENV = "GPU_CHECK_STARTED_AT"
REPORT_RESERVE_S = 10  # kept for writing the report after the last step
MIN_STEP_S = 20  # a step with less left than this is skipped (and fails the check)
DRY_RUN_NOT_COVERED = [
    "CUDA kernels, IO binding and CUDA speed (sessions run on the CPU-only onnxruntime)",
    "NVML: the VRAM token budget, GATEWAY_MAX_VRAM accounting, /api/ps size_vram "
    "(tests/unit/test_vram_budget.py and test_budget.py test them with a fake NVML)",
]


def log(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def gpu_present() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def started_at() -> float:
    """When this check started: inherited through the re-start, else now (and passed on)."""
    started = float(os.environ.get(STARTED_ENV) or time.time())
    os.environ[STARTED_ENV] = repr(started)
    return started


def install_gpu_extra(deadline: float) -> None:
    """onnxruntime and onnxruntime-gpu own the same files: remove the CPU wheel, then add the
    GPU one (pip cannot express "instead of"). The download, the slow part, is bounded by
    `deadline` (raises subprocess.TimeoutExpired past it) and changes nothing installed; the
    swap then installs from the downloaded files and is never cut, since a venv left with
    neither wheel breaks `make serve` and `make test` until someone repairs it by hand."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["gpu"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="gpu-wheels-") as wheels:
        subprocess.run(
            [*pip, "download", "--dest", wheels, *extra, "nvidia-ml-py"],
            check=True,
            timeout=max(deadline - time.time(), 1),
        )
        local = [*pip, "install", "--no-index", "--find-links", wheels]
        for command, check in (
            ([*local, *extra, "nvidia-ml-py"], True),
            ([*pip, "uninstall", "-y", "onnxruntime"], False),
            ([*local, "--force-reinstall", "--no-deps", extra[0]], True),
        ):
            subprocess.run(command, check=check)


class StepTimeout(BaseException):
    """Raised in the main thread when a step runs past the check's deadline (a BaseException,
    so that no `except Exception` inside a step swallows it)."""


class Report:
    def __init__(
        self, dry_run: bool, started: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.started = started
        self.clock = clock
        self.data: dict[str, Any] = {"dry_run": dry_run, "steps": {}, "failures": []}
        if dry_run:
            self.data["dry_run_not_covered"] = DRY_RUN_NOT_COVERED

    def left(self) -> float:
        """Seconds a step may still take, keeping REPORT_RESERVE_S to write the report."""
        return self.started + TOTAL_S - REPORT_RESERVE_S - self.clock()

    def step(self, name: str, action: Callable[[], dict[str, Any]]) -> None:
        left = self.left()
        if left < MIN_STEP_S:
            self.data["steps"][name] = {"skipped": f"out of time ({left:.0f} s left)"}
            self.data["failures"].append(f"{name}: skipped, out of time")
            return
        log(f"{name} ...")
        began = self.clock()
        try:
            with _watchdog(left):
                result = action()
        except (Exception, StepTimeout) as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            self.data["failures"].append(f"{name}: {result['error'][:300]}")
        result["seconds"] = round(self.clock() - began, 1)
        self.data["steps"][name] = result
        for problem in result.get("problems", []):
            self.data["failures"].append(f"{name}: {problem}")
        log(f"{name}: {result.get('error') or 'done'} ({result['seconds']} s)")

    def finish(self) -> None:
        total = self.clock() - self.started
        self.data["total_seconds"] = round(total, 1)
        self.data["failures"] += deadline_problems(total)


class _watchdog:
    """Interrupts the main thread (SIGALRM) `seconds` from now: a step cannot outlast the
    deadline. Servers a step started are stopped by its own `finally`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def expire(signum: int, frame: FrameType | None) -> None:
            raise StepTimeout(f"cut at the deadline ({TOTAL_S} s from the start)")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 0.001))

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


def write(report: Report, output: Path | None) -> int:
    report.finish()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = output or REPO / "bench" / "results" / f"gpu-check-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.data, indent=1, default=str))
    print(json.dumps({k: v for k, v in report.data.items() if k != "steps"}, indent=1))
    print(f"report: {output}")
    return 1 if report.data["failures"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="no GPU: check the logic")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="onnxruntime-gpu already imports (bench/gpu_carry_step.py put it on PYTHONPATH; "
        "the re-start after the install): skip the install",
    )
    parser.add_argument("--sentences", type=int, help="texts for throughput (512; dry run 48)")
    parser.add_argument("--quick", action="store_true", help="fewer kinds and texts (tests)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    dry = args.cpu_dry_run
    started = started_at()
    if not dry and not gpu_present():
        log("no NVIDIA GPU here (nvidia-smi -L failed); use --cpu-dry-run to check the logic")
        return 2
    if not dry and not args.installed:
        try:
            install_gpu_extra(started + TOTAL_S - REPORT_RESERVE_S - MIN_STEP_S)
        except (subprocess.SubprocessError, OSError) as exc:
            report = Report(dry, started)
            report.data["failures"].append(f"install: {type(exc).__name__}: {exc}"[:500])
            return write(report, args.output)
        os.execv(
            sys.executable, [sys.executable, "-m", "bench.gpu_check", "--installed", *sys.argv[1:]]
        )
    from bench.corpora import build_workloads
    from bench.models import load_model

    count = args.sentences or (16 if args.quick else 48 if dry else 512)
    texts = list(build_workloads(load_model("minilm").tokenizer)["sentences"].take(count).texts)
    report = Report(dry, started)
    report.step("environment", lambda: gpu_steps.environment(dry))
    report.step("parity", lambda: gpu_steps.parity(dry, args.quick))
    report.step("raw_throughput", lambda: gpu_steps.raw_throughput(dry, texts))
    report.step("gateway_throughput", lambda: gpu_steps.gateway_throughput(dry, texts))
    report.step("vram_eviction", lambda: eviction(dry))
    return write(report, args.output)


def eviction(dry_run: bool) -> dict[str, Any]:
    from bench.gpu_eviction import eviction_scenario

    return eviction_scenario(dry_run)


if __name__ == "__main__":
    sys.exit(main())
