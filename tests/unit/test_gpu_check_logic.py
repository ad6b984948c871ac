"""`make gpu-check`'s verdicts and deadline, on plain data (no GPU, no models).

A GPU run must fail when CUDA is not what ran (a CPU-only session under a CUDA label, a gateway
whose model fell back to the CPU), when any figure is NaN or infinite, and when the whole check,
install included, takes over 6 minutes.
"""

from __future__ import annotations

import math
import subprocess
import time
from typing import Any

import pytest

from bench import gpu_check
from bench import gpu_verdicts as verdicts
from bench.gpu_check import Report
from bench.gpu_verdicts import TOTAL_S

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
NAN = math.nan


def _env(providers: list[str], nvml: object, device: str) -> dict[str, Any]:
    return {"providers": providers, "nvml": nvml, "default_placement": {"device": device}}


def test_a_gpu_run_needs_the_cuda_provider_nvml_and_a_cuda_placement() -> None:
    cpu_only = _env(["AzureExecutionProvider", CPU], None, "cpu")
    assert len(verdicts.environment_problems(cpu_only, dry_run=False)) == 3
    assert verdicts.environment_problems(cpu_only, dry_run=True) == []
    ready = _env([CUDA, CPU], {"total": 1}, "cuda")
    assert verdicts.environment_problems(ready, dry_run=False) == []


@pytest.mark.parametrize(
    ("device", "providers"),
    [("cpu", [CPU]), ("cuda", [CPU]), ("cuda", [CPU, CUDA]), ("cpu", [CUDA, CPU]), ("cuda", [])],
)
def test_a_cuda_label_on_a_session_that_did_not_run_cuda_fails(
    device: str, providers: list[str]
) -> None:
    assert verdicts.session_problems("raw cuda fp16", device, providers, dry_run=False)


def test_a_session_on_the_cuda_provider_passes() -> None:
    assert verdicts.session_problems("raw cuda fp16", "cuda", [CUDA, CPU], dry_run=False) == []


def _row(kind: str = "minilm fp32", **changes: Any) -> dict[str, Any]:
    row = {
        "kind": kind,
        "placement": "onnxruntime fp16 on cuda",
        "device": "cuda",
        "providers": [CUDA, CPU],
        "max_abs_alone_vs_batch": 0.0,
        "min_cos_to_fp32": 0.99999,
        "max_score_diff": 1e-3 if kind == "cross-encoder" else None,
        "per_width": {},
        "non_finite": 0,
    }
    return {**row, **changes}


def test_good_parity_rows_pass() -> None:
    assert verdicts.parity_problems(_row(), dry_run=False) == []
    assert verdicts.parity_problems(_row("cross-encoder"), dry_run=False) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"min_cos_to_fp32": NAN},
        {"min_cos_to_fp32": 0.99},
        {"max_abs_alone_vs_batch": NAN},
        {"max_abs_alone_vs_batch": math.inf},
        {"per_width": {64: NAN}},
        {"non_finite": 2},
        {"device": "cpu", "providers": [CPU], "placement": "onnxruntime fp16 on cpu"},
    ],
)
def test_nan_bad_or_cpu_parity_rows_fail(changes: dict[str, Any]) -> None:
    assert verdicts.parity_problems(_row(**changes), dry_run=False)


@pytest.mark.parametrize("score", [NAN, math.inf, 0.5, None])
def test_cross_encoder_scores_must_be_finite_and_close(score: float | None) -> None:
    assert verdicts.parity_problems(_row("cross-encoder", max_score_diff=score), dry_run=False)


def test_the_dry_run_still_fails_non_finite_figures() -> None:
    dry = _row(device="cpu", providers=[CPU], min_cos_to_fp32=NAN)
    assert verdicts.parity_problems(dry, dry_run=True)


def test_the_gpu_gateway_must_run_on_cuda_and_hold_gpu_memory() -> None:
    fell_back = {"device": "cpu", "reason": "auto on CUDA; but the CUDA provider did not start"}
    assert verdicts.gateway_problems(fell_back, 10**9, True, dry_run=False)
    on_gpu = {"device": "cuda", "reason": "auto on CUDA"}
    assert verdicts.gateway_problems(on_gpu, 0, True, dry_run=False)
    assert verdicts.gateway_problems(on_gpu, None, False, dry_run=False) == []
    assert verdicts.gateway_problems(on_gpu, 300 * 2**20, True, dry_run=False) == []


def test_the_dry_run_gateway_must_say_the_cpu_ran_its_cuda_path() -> None:
    honest = {"device": "cpu", "reason": "auto on CUDA; but this onnxruntime has no CUDA provider"}
    assert verdicts.gateway_problems(honest, None, False, dry_run=True) == []
    assert verdicts.gateway_problems({"device": "cuda", "reason": ""}, None, False, dry_run=True)


@pytest.mark.parametrize("ratio", [0.78, NAN, None])
def test_cuda_slower_than_the_cpu_fails_a_gpu_run(ratio: float | None) -> None:
    assert verdicts.speedup_problems("raw cuda fp16", ratio, dry_run=False)
    assert verdicts.speedup_problems("raw cuda fp16", ratio, dry_run=True) == []


def test_the_start_time_survives_the_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpu_check.STARTED_ENV, "1234.5")
    assert gpu_check.started_at() == 1234.5
    monkeypatch.delenv(gpu_check.STARTED_ENV)
    now = gpu_check.started_at()
    assert abs(now - time.time()) < 5
    assert float(gpu_check.os.environ[gpu_check.STARTED_ENV]) == now  # what execv passes on


def test_only_the_download_is_bounded_and_the_swap_is_never_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The download (network: the slow part) gets what is left before the deadline and changes
    nothing installed; the swap from the downloaded files runs whole, so a timeout never leaves
    the venv with neither onnxruntime wheel."""
    calls: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr(
        subprocess, "run", lambda command, **kwargs: calls.append((command, kwargs))
    )
    gpu_check.install_gpu_extra(time.time() + 100)
    (download, download_args), *swap = calls
    assert "download" in download and 0 < download_args["timeout"] <= 100
    assert [c for c, _ in swap if "uninstall" in c], "the CPU wheel is removed in the swap"
    assert all("timeout" not in kwargs for _, kwargs in swap)
    installs = [c for c, _ in swap if "install" in c and "uninstall" not in c]
    assert installs and all("--no-index" in c for c in installs)


def test_a_download_past_the_deadline_touches_nothing_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> None:
        calls.append(command)
        if "download" in command:
            raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(subprocess.TimeoutExpired):
        gpu_check.install_gpu_extra(time.time() + 1)
    assert len(calls) == 1  # no uninstall ran


def test_a_check_started_over_6_minutes_ago_skips_its_steps_and_fails() -> None:
    report = Report(dry_run=True, started=time.time() - TOTAL_S - 30)
    report.step("parity", lambda: {"problems": []})
    report.finish()
    assert report.data["steps"]["parity"]["skipped"].startswith("out of time")
    assert any("over the 360 s bound" in f for f in report.data["failures"])


def test_a_step_running_past_the_deadline_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_check, "MIN_STEP_S", 0)
    started = time.time() - (TOTAL_S - gpu_check.REPORT_RESERVE_S - 0.3)  # 0.3 s left
    report = Report(dry_run=True, started=started)
    began = time.monotonic()
    report.step("slow", lambda: time.sleep(5) or {})  # type: ignore[func-returns-value]
    assert time.monotonic() - began < 3
    assert "cut at the deadline" in report.data["steps"]["slow"]["error"]
    assert report.data["failures"]
