"""Pulls that meet other pulls, deletes, and a models folder that cannot be written: against the
local hub of tools/hf_server.py, which holds a download open (`stall_next_download`) so that the
second party arrives while the first is half-way."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.support.hub_cli import hub_cli_env
from tools.gateway_server import GatewayServer
from tools.hf_server import LocalHub
from tools.models import write_registry
from tools.paths import REPO

MIB = 1024 * 1024
MODEL = random.Random(11).randbytes(12 * MIB)


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub() as running:
        yield running


def registry(root: Path, hub: LocalHub) -> Path:
    commit = hub.commit("acme/big", {"onnx/model.onnx": MODEL, "tokenizer.json": b"{}"})
    entry = {
        "kind": "text",
        "source": f"hf://acme/big@{commit}",
        "files": {
            "model": {"path": "onnx/model.onnx", "sha256": hashlib.sha256(MODEL).hexdigest()},
            "tokenizer": "tokenizer.json",
        },
        "dim": 4,
    }
    return write_registry(root / "registry.yaml", {"big": entry})


def gateway(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


WAITING = "waiting for another process's pull of big"


class Drained:
    """Reads a running process's stdout and stderr as they come (no pipe fills up), so a test
    can wait for a line while the process runs on."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((process.stdout, self._out), (process.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line)

    def stdout(self) -> str:
        return "".join(self._out)

    def finish(self, timeout: float) -> tuple[str, str]:
        self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=timeout)
        return "".join(self._out), "".join(self._err)


def stalled(hub: LocalHub) -> bool:
    return any(r.filename == "model.onnx" for r in hub.downloads())


def test_two_processes_pulling_one_model_share_one_download(tmp_path: Path, hub: LocalHub) -> None:
    registry(tmp_path, hub)
    env = hub_cli_env(tmp_path, hub)
    hub.stall_next_download("model.onnx", after_bytes=11 * MIB)
    first = gateway("pull", "big", env=env)
    wait_for(lambda: stalled(hub), "the first pull's download")
    second = gateway("pull", "big", env=env)
    # A delete meanwhile is refused: it would take the first pull's files away.
    removed = subprocess.run(
        [sys.executable, "-m", "gateway", "rm", "big"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 2, removed.stderr
    assert removed.stderr.strip() == "gateway: model 'big' is being pulled by another process"
    # The stall is released only once the second pull says it waits: a fixed sleep here let a
    # slow start-up (seconds of imports on a busy machine) arrive after the first pull ended.
    second_output = Drained(second)
    wait_for(lambda: WAITING in second_output.stdout(), "the second pull to wait for the first")
    assert second.poll() is None
    hub.released.set()
    _, first_err = first.communicate(timeout=120)
    second_out, second_err = second_output.finish(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert WAITING in second_out
    assert (tmp_path / "models" / "big" / "model.onnx").read_bytes() == MODEL
    # One download from the start (the stall ends by dropping the connection, and the first
    # pull resumes with a Range request); the second pull found the file in place.
    fresh = [r for r in hub.downloads("model.onnx") if r.headers.get("range") is None]
    assert len(fresh) == 1, hub.downloads("model.onnx")


def test_delete_during_a_pull_is_refused(tmp_path: Path, hub: LocalHub) -> None:
    registry(tmp_path, hub)
    hub.stall_next_download("model.onnx", after_bytes=11 * MIB)
    with (
        GatewayServer(registry=tmp_path / "registry.yaml", env={"HF_ENDPOINT": hub.endpoint}) as (
            server
        ),
        server.client() as http,
        httpx.Client(base_url=server.url, timeout=120) as puller,
    ):
        with puller.stream("POST", "/api/pull", json={"model": "big"}) as pull:
            lines = pull.iter_lines()
            assert '"pulling manifest"' in next(lines)
            wait_for(lambda: stalled(hub), "the pull's download")
            refused = http.request("DELETE", "/api/delete", json={"model": "big"})
            assert refused.status_code == 409, refused.text
            assert refused.json() == {
                "error": "model 'big' is being pulled; try again when the pull finishes"
            }
            hub.released.set()
            assert '"success"' in list(lines)[-1]
        assert http.request("DELETE", "/api/delete", json={"model": "big"}).status_code == 200
        assert not (server.models_dir / "big").exists()


def test_a_file_where_the_model_folder_should_be_is_a_clear_507(
    tmp_path: Path, hub: LocalHub
) -> None:
    registry(tmp_path, hub)
    models = tmp_path / "models"
    models.mkdir()
    (models / "big").write_text("in the way")
    expected = "model 'big' could not be pulled: models folder models: File exists (big)"
    with (
        GatewayServer(
            registry=tmp_path / "registry.yaml",
            models_dir=models,
            env={"HF_ENDPOINT": hub.endpoint, "GATEWAY_AUTO_PULL": "true"},
        ) as server,
        server.client() as http,
    ):
        plain = http.post("/api/pull", json={"model": "big", "stream": False})
        assert plain.status_code == 507, plain.text
        assert plain.json() == {"error": expected}
        streamed = http.post("/api/pull", json={"model": "big"})
        assert streamed.text.splitlines()[-1] == f'{{"error":"{expected}"}}'
        native = http.post("/v1/embeddings", json={"model": "big", "input": "x"})  # auto-pull
        assert native.status_code == 507, native.text
        assert native.json()["error"]["message"] == expected
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "pull", "big"],
        cwd=REPO,
        env=hub_cli_env(tmp_path, hub),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"gateway: models folder {models}: File exists (big)"
    )
