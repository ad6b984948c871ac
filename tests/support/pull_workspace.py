"""What the model source tests share (tests/api/test_hub_sources.py,
tests/api/test_pypi_and_local_sources.py): a registry entry of the tiny test model, the
folders of one test with `gateway` run in them, and how a clean failure and a clean
models folder look."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.model_lock import LOCKS_DIR
from tools.hf_server import LocalHub
from tools.models import write_registry
from tools.paths import REPO


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiny_entry(source: str, *, model_sha256: str | None = None) -> dict:
    """A text entry with an ONNX file (LFS on the hub) and a tokenizer (a regular git file)."""
    model: dict[str, str] = {"path": "onnx/model.onnx"}
    if model_sha256 is not None:
        model["sha256"] = model_sha256
    files = {"model": model, "tokenizer": "tokenizer.json"}
    return {"kind": "text", "source": source, "files": files, "dim": 4}


@dataclass
class Workspace:
    """A registry, a models folder and a Hugging Face home of one test."""

    root: Path
    hub: LocalHub | None = None

    @property
    def registry(self) -> Path:
        return self.root / "registry.yaml"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def write(self, models: dict[str, dict]) -> Path:
        return write_registry(self.registry, models)

    def gateway(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI, isolated from the caller's HF_* and GATEWAY_* variables."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GATEWAY_"))}
        clean.update(
            GATEWAY_REGISTRY=str(self.registry),
            GATEWAY_MODELS_DIR=str(self.models),
            HF_HOME=str(self.root / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
        )
        if self.hub is not None:
            clean["HF_ENDPOINT"] = self.hub.endpoint
        clean.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            cwd=REPO,
            env=clean,
            capture_output=True,
            text=True,
            timeout=300,
        )


def assert_failed(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A clean failure: exit code 2, one `gateway: ...` message naming every needle."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("gateway: "), result.stderr
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def leftovers(directory: Path) -> list[str]:
    """Anything a download may leave behind: partial files, staging folders. (Not the pull
    locks' folder: lock files stay, as removing one could race with a process taking it.)"""
    if not directory.exists():
        return []
    return sorted(
        p.name
        for p in directory.rglob("*")
        if p.name.startswith(".") and LOCKS_DIR not in p.relative_to(directory).parts
    )
