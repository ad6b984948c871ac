"""What the numbers were measured on: the machine and the package versions."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    from gateway.runtime import physical_cores

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    import importlib.metadata as metadata

    names = (
        "onnxruntime", "tokenizers", "numpy", "torch", "sentence-transformers", "transformers",
        "litestar", "uvicorn", "httpx", "msgspec", "embedding-gateway",
    )  # fmt: skip
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out
