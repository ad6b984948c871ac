"""The measuring steps of `make gpu-check` (bench/gpu_check.py runs them; gpu_verdicts.py
judges them). Every row names the device that ran it: the placement the session reports (the
CUDA backend says cpu when ONNX Runtime did not start the CUDA provider) and the session's
providers, or, through the gateway, the model's `compute` from /admin/models."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import gpu_verdicts as verdicts

REPS = 3  # timed passes after a warm-up pass over every batch shape; the median counts
# The dry run's "gpu" gateway: `gateway serve` with the CUDA path on (bench/dry_cuda_gateway.py).
DRY_CUDA_SERVE = [sys.executable, "-m", "bench.dry_cuda_gateway"]


def environment(dry_run: bool) -> dict[str, Any]:
    import onnxruntime as ort

    from gateway.memory import Nvml
    from gateway.runtime import Runtime

    gpu = Nvml().memory()
    runtime = Runtime(device="auto", backend="auto", precision="auto")
    try:
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        gpus = smi.stdout.strip() if smi.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        gpus = None
    out: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "nvidia_smi": gpus,
        "nvml": None if gpu is None else gpu.__dict__,
        "default_placement": runtime.describe()["default_placement"],
    }
    out["problems"] = verdicts.environment_problems(out, dry_run)
    return out


def cuda_runtime(dry_run: bool, precision: str) -> Any:
    from gateway.runtime import Runtime

    return Runtime(device="cuda", backend="auto", precision=precision, assume_cuda=dry_run)


def parity(dry_run: bool, quick: bool) -> dict[str, Any]:
    from bench.fast_path_numerics import all_cases
    from gateway.runtime import Runtime
    from tools.fast_path import measure

    exact = Runtime(device="cpu")
    rows, problems = [], []
    # --quick (the dry run's own test): one text kind and the reranker, fp16 only.
    cases = all_cases(("minilm fp32", "cross-encoder"), 12) if quick else all_cases()
    for case in cases:
        for precision in ("auto",) if quick else ("auto", "fp32"):
            figures = measure(case, cuda_runtime(dry_run, precision), exact)
            rows.append(figures.__dict__)
            problems.extend(verdicts.parity_problems(figures.__dict__, dry_run))
    return {"reference": "ONNX Runtime fp32 on the CPU", "rows": rows, "problems": problems}


def _rate(run_pass: Any, count: int) -> float:
    """Texts/s: one warm-up pass (every batch shape, arena growth), then the median of REPS."""
    run_pass()
    rates = []
    for _ in range(REPS):
        started = time.perf_counter()
        run_pass()
        rates.append(count / (time.perf_counter() - started))
    return round(statistics.median(rates), 1)


def raw_throughput(dry_run: bool, texts: list[str]) -> dict[str, Any]:
    from bench.models import load_model
    from gateway.backends import session_placement
    from gateway.encoders import TextEncoder, build_encoder
    from gateway.encoders.base import EncodeOptions
    from gateway.registry import parse_entry
    from gateway.runtime import Runtime
    from tools.models import minilm_entry

    model = load_model("minilm")
    spec = parse_entry("minilm", minilm_entry(model.folder, max_tokens=256))
    paths = {"model": model.onnx, "tokenizer": model.tokenizer}
    runtimes = {
        "cuda fp16": (cuda_runtime(dry_run, "auto"), 128),
        "cuda fp32": (cuda_runtime(dry_run, "fp32"), 128),
        "cpu ort fp32": (Runtime(device="cpu"), 32),
    }
    out: dict[str, Any] = {"texts": len(texts), "reps": REPS, "rows": {}, "problems": []}
    for name, (runtime, batch) in runtimes.items():
        encoder = build_encoder(spec, paths, runtime)
        assert isinstance(encoder, TextEncoder)
        placement = session_placement(encoder)
        assert placement is not None
        providers = encoder.session.get_providers()
        items = sorted(encoder.prepare(texts, EncodeOptions()), key=lambda item: item.length)

        def run_pass(items: list[Any] = items, batch: int = batch, encoder: Any = encoder) -> None:
            for start in range(0, len(items), batch):
                encoder.run(items[start : start + batch])

        out["rows"][name] = {
            "texts_per_s": _rate(run_pass, len(items)),
            "batch": batch,
            "placement": f"{placement.backend} {placement.precision} on {placement.device}",
            "providers": providers,
        }
        if name.startswith("cuda"):
            out["problems"] += verdicts.session_problems(
                f"raw {name}", placement.device, providers, dry_run
            )
    rows = out["rows"]
    ratio = round(rows["cuda fp16"]["texts_per_s"] / rows["cpu ort fp32"]["texts_per_s"], 2)
    out["x_cuda_fp16_over_cpu_ort_fp32"] = ratio
    out["problems"] += verdicts.speedup_problems("raw cuda fp16", ratio, dry_run)
    return out


def gpu_memory_of(pid: int) -> tuple[int | None, bool]:
    """(GPU bytes NVML attributes to `pid`, whether NVML's per-process figures can be read
    here). They can when NVML lists this process (which ran CUDA sessions in the steps
    before): in a container with its own PID namespace NVML's pids are the host's."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:
        return None, False
    used = {p.pid: int(p.usedGpuMemory or 0) for p in processes}
    return used.get(pid, 0), os.getpid() in used


def gateway_throughput(dry_run: bool, texts: list[str]) -> dict[str, Any]:
    from bench.load import OLLAMA, run_load
    from bench.models import load_model
    from bench.servers import Gateway

    model = load_model("minilm")
    out: dict[str, Any] = {"texts": len(texts), "load": "8x32", "reps": REPS, "rows": {}}
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    compute = {"GATEWAY_BACKEND": "auto", "GATEWAY_PRECISION": "auto", "GATEWAY_CACHE_BYTES": "0"}
    for name, device, command in (
        ("gpu", "cuda", DRY_CUDA_SERVE if dry_run else None),
        ("cpu", "cpu", None),
    ):
        server = Gateway(model, workdir, {"GATEWAY_DEVICE": device, **compute}, command=command)
        server.start()
        try:
            run_load(server.url, OLLAMA, model.served_name, texts[:64], clients=8, per_request=8)

            def run_pass(url: str = server.url) -> None:
                run_load(url, OLLAMA, model.served_name, texts, clients=8, per_request=32)

            rate = _rate(run_pass, len(texts))
            row = server.row(model.served_name)
            memory, per_process = gpu_memory_of(server.pid) if not dry_run else (None, False)
        finally:
            server.stop()
        out["rows"][name] = {
            "texts_per_s": rate,
            "compute": row.get("compute", {}),
            "memory_bytes": row.get("memory_bytes"),
            "nvml_process_gpu_bytes": memory if per_process else "not readable here",
        }
        if name == "gpu":
            out["problems"] = verdicts.gateway_problems(
                row.get("compute", {}), memory, per_process, dry_run
            )
    ratio = round(out["rows"]["gpu"]["texts_per_s"] / out["rows"]["cpu"]["texts_per_s"], 2)
    out["x_gpu_over_cpu_auto"] = ratio
    out["problems"] += verdicts.speedup_problems("gateway gpu", ratio, dry_run)
    return out
