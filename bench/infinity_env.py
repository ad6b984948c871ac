"""Infinity (`infinity-emb`) in its own virtual environment, created on first use.

The install follows reference/perf-baseline.md section 2: the pinned CPU torch first, so that
resolving infinity's extras cannot pull a CUDA build, then `infinity-emb[torch,optimum,server]`
(never `[all]`, which resolves another torch and a dozen CUDA wheels). A failed install is
remembered in the venv folder with its reason, so every later bench run reports it quickly
instead of repeating a long failing install; delete the folder to try again.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.models import REPO

VENV = REPO / ".cache" / "bench-venvs" / "infinity"
TORCH = "torch==2.13.0"
INFINITY = "infinity-emb[torch,optimum,server]"
READY = ".ready"
FAILED = ".failed"
INSTALL_TIMEOUT_S = 1500


@dataclass(frozen=True)
class InfinityEnv:
    """A usable venv (`python` set) or the reason there is none (`error` set)."""

    python: Path | None
    versions: dict[str, str]
    error: str | None = None


def _pip(python: Path, *args: str, log: Path) -> None:
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=INSTALL_TIMEOUT_S
        )


def _versions(python: Path) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json\n"
        "names = ['infinity-emb', 'torch', 'sentence-transformers', 'transformers', 'optimum',"
        " 'onnxruntime', 'tokenizers', 'numpy', 'fastapi', 'uvicorn']\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    raw = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return json.loads(raw)


def ensure_infinity(log=print) -> InfinityEnv:
    """The venv, installing it the first time (takes minutes; holds a lock meanwhile)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    python = VENV / "bin" / "python"
    with (VENV.parent / ".infinity.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (VENV / FAILED).is_file():
            reason = (VENV / FAILED).read_text().strip()
            return InfinityEnv(None, {}, f"{reason} (remembered; delete {VENV} to retry)")
        if not (VENV / READY).is_file():
            log(f"infinity: creating {VENV} (first use; several minutes)")
            install_log = VENV.parent / "infinity-install.log"
            install_log.write_text("")
            try:
                subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
                _pip(python, "--upgrade", "pip", log=install_log)
                _pip(python, TORCH, log=install_log)
                # Naming torch again keeps the resolver from swapping it while adding the extras.
                _pip(python, INFINITY, TORCH, log=install_log)
                _versions(python)
            except (subprocess.SubprocessError, OSError) as exc:
                tail = install_log.read_text(errors="replace").strip().splitlines()[-12:]
                reason = f"install failed: {exc}; last lines of {install_log}:\n" + "\n".join(tail)
                VENV.mkdir(parents=True, exist_ok=True)
                (VENV / FAILED).write_text(reason + "\n")
                return InfinityEnv(None, {}, reason)
            (VENV / READY).write_text("ok\n")
        try:
            return InfinityEnv(python, _versions(python))
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            return InfinityEnv(None, {}, f"the venv at {VENV} is broken: {exc}")
