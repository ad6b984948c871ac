"""`gateway serve --ray` that cannot start ends with one line, not Ray's tracebacks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tools.paths import REPO

pytestmark = pytest.mark.timeout(240)


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
            timeout=200,
        )
    assert done.returncode == 1, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last == (
        f"gateway: Ray Serve did not start: RuntimeError: Failed to bind to address "
        f"'127.0.0.1:{port}'."
    ), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
