"""A pull killed half-way (an OOM kill, SIGKILL: no cleanup runs) leaves nothing a later load
trusts, and the next pull starts that file again cleanly and removes the leftovers: the real
`gateway pull` against the local hub of tools/hf_server.py, killed while the hub holds
the download open. (huggingface_hub 2.x downloads to a process-unique temporary file, so a
download resumes within a pull, tests/api/test_hub_sources.py, but not across pulls.)"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from gateway.registry import Registry
from gateway.sources import ModelStore
from tests.support.hub_cli import hub_cli_env, hub_model_entry
from tools.hf_server import LocalHub
from tools.models import write_registry
from tools.paths import REPO

MIB = 1024 * 1024


def pull_command(root: Path, hub: LocalHub) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-m", "gateway", "pull", "big"], hub_cli_env(root, hub)


def incomplete_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.rglob("*.incomplete"))


def test_killed_pull_is_not_trusted_and_the_next_pull_restarts_cleanly(tmp_path: Path) -> None:
    # huggingface_hub writes 10 MiB chunks: stalling after 11 MiB leaves 10 MiB on disk.
    model_bytes = random.Random(7).randbytes(12 * MIB)
    with LocalHub() as hub:
        entry = hub_model_entry(hub, "acme/big-embed", model_bytes)
        registry = write_registry(tmp_path / "registry.yaml", {"big": entry})
        spec = Registry.load(registry).resolve("big").spec
        store = ModelStore(tmp_path / "models", tmp_path)
        model_dir = store.model_dir(spec)
        command, env = pull_command(tmp_path, hub)

        hub.stall_next_download("model.onnx", after_bytes=11 * MIB)
        pull = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while incomplete_bytes(model_dir) < 10 * MIB and time.monotonic() < deadline:
            assert pull.poll() is None, pull.stderr.read() if pull.stderr else ""
            time.sleep(0.1)
        assert incomplete_bytes(model_dir) == 10 * MIB
        pull.kill()
        pull.wait(timeout=30)

        # Killed half-way: no model file, so nothing loads it; the model is not present.
        assert not (model_dir / "model.onnx").exists()
        assert not store.is_present(spec)
        assert "model" in store.missing(spec)
        left = sorted(p.name for p in model_dir.iterdir())
        assert left == [".hf-download-onnx__model.onnx"], left  # the partial download only

        hub.clear_requests()
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert (model_dir / "model.onnx").read_bytes() == model_bytes
        assert store.is_present(spec)
        (again,) = hub.downloads("model.onnx")
        assert again.headers.get("range") is None and again.status == 200
        assert again.sent_bytes == len(model_bytes)
        assert not [p.name for p in model_dir.iterdir() if p.name.startswith(".")]
