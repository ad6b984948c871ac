"""A private venv with PyLate 1.6.0, the independent ColBERT reference the late tests compare to.

PyLate needs sentence-transformers 5.3 / transformers <= 5.3 while the gateway's test venv runs
newer ones, so it lives in its own venv under .cache/, created on first use and reused after.

Never a plain `pip install pylate`: its metadata pulls fast-plaid, which pins torch 2.11 (a
multi-GB CUDA wheel). The recipe below installs PyLate with
--no-deps beside the local torch 2.13.0 CPU wheel, with torch pinned by a constraints file on
every step so that no later resolution can replace it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from tools.paths import REPO

VENV = REPO / ".cache" / "venv-pylate"
TORCH = "torch==2.13.0"
# Each step is one pip command; the marker records the recipe, so changing it rebuilds the venv.
STEPS: tuple[tuple[str, ...], ...] = (
    (TORCH,),
    ("--no-deps", "pylate==1.6.0"),
    ("--only-binary", ":all:", "sentence-transformers==5.3.0", "transformers>=4.41.0,<=5.3.0"),
    # pylate.utils imports datasets when pylate.models loads.
    ("--only-binary", ":all:", "datasets>=2.20.0"),
    # The exporter (torch.onnx, dynamo) needs onnx and onnxscript.
    ("--only-binary", ":all:", "onnx", "onnxscript"),
)
RECIPE_ID = repr(STEPS)
MARKER = VENV / ".pylate-ready"


def python_path() -> Path:
    return VENV / "bin" / "python"


def _ready() -> bool:
    return MARKER.is_file() and MARKER.read_text() == RECIPE_ID and python_path().exists()


def ensure_pylate_python(*, log: Path | None = None) -> Path:
    """The venv's python, creating the venv first if needed (idempotent, safe across processes)."""
    if _ready():
        return python_path()
    VENV.parent.mkdir(parents=True, exist_ok=True)
    log = log or VENV.parent / "venv-pylate.log"
    with (VENV.parent / "venv-pylate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest process waits for the first one
        if _ready():
            return python_path()
        _build(log)
    return python_path()


def _build(log: Path) -> None:
    shutil.rmtree(VENV, ignore_errors=True)
    started = time.monotonic()
    constraints = VENV.parent / "venv-pylate-constraints.txt"
    constraints.write_text(TORCH + "\n")
    with log.open("w") as out:
        _run([sys.executable, "-m", "venv", str(VENV)], out)
        pip = [str(python_path()), "-m", "pip", "install", "--disable-pip-version-check"]
        for step in STEPS:
            _run([*pip, "-c", str(constraints), *step], out)
        out.write(f"pylate venv ready in {time.monotonic() - started:.0f}s\n")
    MARKER.write_text(RECIPE_ID)


def _run(command: list[str], out: TextIO) -> None:
    out.write("$ " + " ".join(command) + "\n")
    out.flush()
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"PyLate venv bootstrap failed ({done.returncode}): {' '.join(command)}; see {out.name}"
        )


if __name__ == "__main__":
    print(ensure_pylate_python())
