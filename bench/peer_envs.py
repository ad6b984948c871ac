"""Peers (Infinity, fastembed) in virtual environments of their own, created on first use.

Their requirements clash with the gateway's test environment (fastembed wants
huggingface-hub < 2, transformers 5 wants >= 2.4; Infinity pins its own transformers), so each
gets a venv under .cache/bench-venvs/. Infinity gets
the pinned CPU torch first, so that resolving infinity's extras cannot pull a CUDA build, then
`infinity-emb[torch,optimum,server]` (never `[all]`). A failed install is remembered in the
venv folder with its reason, so every later bench run reports it quickly instead of repeating
a long failing install; delete the folder to try again.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.models import REPO

VENVS = REPO / ".cache" / "bench-venvs"
TORCH = "torch==2.13.0"
READY = ".ready"
FAILED = ".failed"
INSTALL_TIMEOUT_S = 1500


@dataclass(frozen=True)
class Peer:
    """What to install (pip argument lists, in order) and which versions to record."""

    name: str
    installs: tuple[tuple[str, ...], ...]
    packages: tuple[str, ...]


INFINITY = Peer(
    "infinity",
    # Naming torch again keeps the resolver from swapping it while adding the extras.
    ((TORCH,), ("infinity-emb[torch,optimum,server]", TORCH)),
    (
        "infinity-emb",
        "torch",
        "sentence-transformers",
        "transformers",
        "optimum",
        "onnxruntime",
        "tokenizers",
        "numpy",
        "fastapi",
        "uvicorn",
    ),
)
FASTEMBED = Peer(
    "fastembed",
    (("fastembed",),),
    ("fastembed", "onnxruntime", "tokenizers", "numpy", "huggingface-hub"),
)


@dataclass(frozen=True)
class PeerEnv:
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


def _versions(python: Path, packages: Sequence[str]) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    raw = subprocess.run(
        [str(python), "-c", script, *packages],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return dict(json.loads(raw))


def ensure_peer(peer: Peer, log: Callable[[str], object] = print) -> PeerEnv:
    """The peer's venv, installing it the first time (minutes; holds a lock meanwhile)."""
    venv = VENVS / peer.name
    VENVS.mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    with (VENVS / f".{peer.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / FAILED).is_file():
            reason = (venv / FAILED).read_text().strip()
            return PeerEnv(None, {}, f"{reason} (remembered; delete {venv} to retry)")
        if not (venv / READY).is_file():
            log(f"{peer.name}: creating {venv} (first use; minutes)")
            install_log = VENVS / f"{peer.name}-install.log"
            install_log.write_text("")
            try:
                subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
                _pip(python, "--upgrade", "pip", log=install_log)
                for args in peer.installs:
                    _pip(python, *args, log=install_log)
                _versions(python, peer.packages)
            except (subprocess.SubprocessError, OSError) as exc:
                tail = install_log.read_text(errors="replace").strip().splitlines()[-12:]
                reason = f"install failed: {exc}; last lines of {install_log}:\n" + "\n".join(tail)
                venv.mkdir(parents=True, exist_ok=True)
                (venv / FAILED).write_text(reason + "\n")
                return PeerEnv(None, {}, reason)
            (venv / READY).write_text("ok\n")
    try:
        return PeerEnv(python, _versions(python, peer.packages))
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return PeerEnv(None, {}, f"the venv at {venv} is broken: {exc}")
