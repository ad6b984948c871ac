"""`gateway serve --ray` that cannot start ends with one line, not Ray's tracebacks: a busy
port is found before the cluster starts (Ray's proxy would find it after, and its workers'
tracebacks raced the reason to the terminal)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tools.paths import REPO

pytestmark = pytest.mark.timeout(120)


def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--ray", "--port", str(port)],
            cwd=REPO,
            env={**os.environ, "GATEWAY_REGISTRY": str(REPO / "registry.yaml")},
            capture_output=True,
            text=True,
            timeout=100,
        )
    assert done.returncode == 1, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last == (
        f"gateway: Ray Serve did not start: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    ), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "Started a local Ray instance" not in done.stderr, "the check came after Ray started"
