"""The real server, in the compute mode this machine picks (`auto`): after a batch large
enough to be working memory (16 texts of 256 tokens; GATEWAY_RELEASE_TOKENS is 2048), the
model's memory_bytes and the process's memory go back close to where they were once the model
has been idle a second. Before, the runtime kept the batch's working memory for good, and
memory_bytes counted all of it (~400 MiB here; 1.4 GiB after 64 x 256 tokens)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.models import NO_CACHE, bundled_registry_in
from tools.gateway_server import GatewayServer

MIB = 1 << 20
MODEL = "all-minilm"
# Close to where they were: OpenVINO kept 35 MiB after a release, ONNX Runtime nothing.
SLACK = 96 * MIB


@pytest.fixture(scope="module")
def auto_server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = bundled_registry_in(tmp_path_factory.mktemp("release"))
    auto = {"GATEWAY_BACKEND": "auto", "GATEWAY_PRECISION": "auto"}
    with GatewayServer(registry=registry, env={**NO_CACHE, **auto}) as running:
        yield running


def anonymous(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("RssAnon:"))
    return int(line.split()[1]) * 1024


def row(client: httpx.Client) -> dict[str, int]:
    models = client.get("/admin/models").json()["models"]
    return next(m for m in models if m["name"] == MODEL)


def test_a_large_batch_memory_goes_back_once_the_model_is_idle(auto_server: GatewayServer) -> None:
    assert auto_server.process is not None
    pid = auto_server.process.pid
    # 250 distinct words: 256 tokens each once cut (truncate is on by default).
    texts = [" ".join(f"w{n}x{uuid.uuid4().hex[:6]}" for n in range(250)) for _ in range(16)]
    with auto_server.client() as client:
        client.post("/api/embed", json={"model": MODEL, "input": ["warm up"]}).raise_for_status()
        before, process_before = row(client), anonymous(pid)
        answer = client.post("/api/embed", json={"model": MODEL, "input": texts})
        assert answer.status_code == 200, answer.text
        assert answer.json()["prompt_eval_count"] == 16 * 256
        deadline = time.monotonic() + 15
        while (after := row(client))["memory_releases"] == before["memory_releases"]:
            assert time.monotonic() < deadline, "the working memory was never released"
            time.sleep(0.2)
    assert after["working_bytes"] == 0
    assert after["memory_bytes"] - before["memory_bytes"] < SLACK, (before, after)
    assert anonymous(pid) - process_before < SLACK
