"""`gateway serve` with the CUDA path forced on: the `--cpu-dry-run` "gpu" gateway.

On a CPU-only onnxruntime the server then does what it does on a GPU machine as far as a CPU
allows: `auto` places models on CUDA (fp16, shape buckets), converts and caches the fp16
graphs, and loads them through the CUDA backend, which finds no CUDA provider and so runs them
on the CPU and says so (`compute.device` cpu, with the reason): the dry run checks that the
gateway reports what really runs. What it cannot reach without a GPU: IO binding, NVML's
figures (the VRAM token budget, GATEWAY_MAX_VRAM accounting, /api/ps size_vram); the unit
layer tests those with a fake NVML (tests/unit/test_vram_budget.py, test_budget.py).
Never used outside the dry run.
"""

from __future__ import annotations

import sys

from gateway import runtime


def main() -> int:
    # What Runtime(assume_cuda=True) does, for the Runtime the server builds from its settings.
    runtime.cuda_available = lambda: True  # type: ignore[assignment]
    from gateway.cli import main as gateway_main

    return gateway_main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
