"""`make gpu-check`: the CUDA path, checked end to end on a machine with an NVIDIA GPU.

One run, one JSON report (bench/results/gpu-check-<time>.json), under 6 minutes:
  1. install: swaps onnxruntime for the `gpu` extra (onnxruntime-gpu with CUDA/cuDNN wheels,
     onnx) in this venv, then starts itself again;
  2. parity and batch invariance of every model kind (the test suite's exports) on the CUDA
     placement `auto` picks (fp16) and on CUDA fp32, against the CPU exact mode (ORT fp32);
  3. throughput of MiniLM on short sentences: the raw backend in-process (CUDA fp16, CUDA
     fp32, CPU fp32) and through the gateway (8 clients x 32 texts), GPU vs CPU;
  4. VRAM eviction: a gateway whose GATEWAY_MAX_VRAM fits the larger of two models but not
     both; loading the second must evict the first, with NVML's figures recorded.
`--cpu-dry-run` runs the same steps here without a GPU: no install, CUDA placements on the
CPU-only onnxruntime (fp16 graphs run on the CPU), the host-memory budget for step 4.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 330  # the whole check must end within 6 minutes, installs included
MIN_COSINE, MAX_SCORE_DIFF, MAX_BATCH_DIFF = 0.999, 1e-2, 1e-5


def log(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def gpu_present() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def install_gpu_extra() -> None:
    """onnxruntime and onnxruntime-gpu own the same files: remove the CPU wheel, then add the
    GPU one (pip cannot express "instead of")."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["gpu"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "uninstall", "-y", "onnxruntime"], check=False)
    subprocess.run([*pip, "install", *extra, "nvidia-ml-py"], check=True, timeout=240)
    subprocess.run([*pip, "install", "--force-reinstall", "--no-deps", extra[0]], check=True)


class Report:
    def __init__(self, dry_run: bool) -> None:
        self.started = time.monotonic()
        self.data: dict[str, Any] = {"dry_run": dry_run, "steps": {}, "failures": []}

    def step(self, name: str, action: Callable[[], dict[str, Any]]) -> None:
        left = DEADLINE_S - (time.monotonic() - self.started)
        if left < 20:
            self.data["steps"][name] = {"skipped": f"out of time ({left:.0f} s left)"}
            self.data["failures"].append(f"{name}: skipped, out of time")
            return
        log(f"{name} ...")
        began = time.monotonic()
        try:
            result = action()
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            self.data["failures"].append(f"{name}: {result['error'][:300]}")
        result["seconds"] = round(time.monotonic() - began, 1)
        self.data["steps"][name] = result
        for problem in result.get("problems", []):
            self.data["failures"].append(f"{name}: {problem}")
        log(f"{name}: {result.get('error') or 'done'} ({result['seconds']} s)")


def environment() -> dict[str, Any]:
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
    return {
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "nvidia_smi": gpus,
        "nvml": None if gpu is None else gpu.__dict__,
        "default_placement": runtime.describe()["default_placement"],
    }


def cuda_runtime(dry_run: bool, precision: str) -> Any:
    from gateway.runtime import Runtime

    return Runtime(device="cuda", backend="auto", precision=precision, assume_cuda=dry_run)


def parity(dry_run: bool, quick: bool) -> dict[str, Any]:
    from bench.fast_path_numerics import all_cases
    from gateway.runtime import Runtime

    exact = Runtime(device="cpu")
    rows, problems = [], []
    # --quick (the dry run's own test): one text kind and the reranker, fp16 only.
    cases = all_cases(("minilm fp32", "cross-encoder"), 12) if quick else all_cases()
    for case in cases:
        for precision in ("auto",) if quick else ("auto", "fp32"):
            figures = measure_case(case, cuda_runtime(dry_run, precision), exact)
            rows.append(figures.__dict__)
            label = f"{case.kind} {figures.placement}"
            if figures.max_abs_alone_vs_batch > MAX_BATCH_DIFF:
                problems.append(f"{label}: alone vs batch {figures.max_abs_alone_vs_batch:.1e}")
            if case.kind == "cross-encoder":
                if (figures.max_score_diff or 0) > MAX_SCORE_DIFF:
                    problems.append(f"{label}: scores off by {figures.max_score_diff:.1e}")
            elif min([figures.min_cos_to_fp32, *figures.per_width.values()]) < MIN_COSINE:
                problems.append(f"{label}: min cos {figures.min_cos_to_fp32:.6f}")
    return {"rows": rows, "problems": problems}


def measure_case(case: Any, fast: Any, exact: Any) -> Any:
    from tools.fast_path import measure

    return measure(case, fast, exact)


def raw_throughput(dry_run: bool, texts: list[str]) -> dict[str, Any]:
    from bench.models import load_model
    from gateway.encoders import TextEncoder, build_encoder
    from gateway.encoders.base import EncodeOptions
    from gateway.registry import parse_entry
    from gateway.runtime import Runtime
    from tools.models import minilm_entry

    model = load_model("minilm")
    spec = parse_entry("minilm", minilm_entry(model.folder, max_tokens=256))
    paths = {"model": model.onnx, "tokenizer": model.tokenizer}
    runtimes = {
        "cuda fp16": cuda_runtime(dry_run, "auto"),
        "cuda fp32": cuda_runtime(dry_run, "fp32"),
        "cpu ort fp32": Runtime(device="cpu"),
    }
    out: dict[str, Any] = {"texts": len(texts)}
    for name, runtime in runtimes.items():
        encoder = build_encoder(spec, paths, runtime)
        assert isinstance(encoder, TextEncoder)
        items = sorted(encoder.prepare(texts, EncodeOptions()), key=lambda item: item.length)
        batch = 32 if "cpu" in name else 128
        encoder.run(items[:batch])  # warm-up
        started = time.perf_counter()
        for start in range(0, len(items), batch):
            encoder.run(items[start : start + batch])
        out[name] = round(len(items) / (time.perf_counter() - started), 1)
    out["x_cuda_fp16_over_cpu"] = round(out["cuda fp16"] / out["cpu ort fp32"], 2)
    return out


def gateway_throughput(dry_run: bool, texts: list[str]) -> dict[str, Any]:
    from bench.load import OLLAMA, run_load
    from bench.models import load_model
    from bench.servers import Gateway

    model = load_model("minilm")
    device = "cpu" if dry_run else "cuda"
    out: dict[str, Any] = {"texts": len(texts), "load": "8x32"}
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    for name, env in (
        ("gpu", {"GATEWAY_DEVICE": device, "GATEWAY_BACKEND": "auto", "GATEWAY_PRECISION": "auto"}),
        ("cpu", {"GATEWAY_DEVICE": "cpu", "GATEWAY_BACKEND": "auto", "GATEWAY_PRECISION": "auto"}),
    ):
        server = Gateway(model, workdir, {"GATEWAY_CACHE_BYTES": "0", **env})
        server.start()
        try:
            run_load(server.url, OLLAMA, model.served_name, texts[:64], clients=8, per_request=8)
            result = run_load(
                server.url, OLLAMA, model.served_name, texts, clients=8, per_request=32
            )
            out[name] = round(len(texts) / result.wall_s, 1)
        finally:
            server.stop()
    out["x_gpu_over_cpu"] = round(out["gpu"] / out["cpu"], 2)
    return out


def eviction(dry_run: bool) -> dict[str, Any]:
    from bench.gpu_eviction import eviction_scenario

    return eviction_scenario(dry_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="no GPU: check the logic")
    parser.add_argument("--installed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sentences", type=int, help="texts for throughput (512; dry run 48)")
    parser.add_argument("--quick", action="store_true", help="fewer kinds and texts (tests)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    dry = args.cpu_dry_run
    if not dry and not gpu_present():
        log("no NVIDIA GPU here (nvidia-smi -L failed); use --cpu-dry-run to check the logic")
        return 2
    if not dry and not args.installed:
        install_gpu_extra()
        os.execv(
            sys.executable, [sys.executable, "-m", "bench.gpu_check", "--installed", *sys.argv[1:]]
        )
    from bench.corpora import build_workloads
    from bench.models import load_model

    count = args.sentences or (16 if args.quick else 48 if dry else 512)
    texts = list(build_workloads(load_model("minilm").tokenizer)["sentences"].take(count).texts)
    report = Report(dry)
    report.step("environment", environment)
    report.step("parity", lambda: parity(dry, args.quick))
    report.step("raw_throughput", lambda: raw_throughput(dry, texts))
    report.step("gateway_throughput", lambda: gateway_throughput(dry, texts))
    report.step("vram_eviction", lambda: eviction(dry))
    report.data["total_seconds"] = round(time.monotonic() - report.started, 1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or REPO / "bench" / "results" / f"gpu-check-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.data, indent=1, default=str))
    print(json.dumps({k: v for k, v in report.data.items() if k != "steps"}, indent=1))
    print(f"report: {output}")
    return 1 if report.data["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
