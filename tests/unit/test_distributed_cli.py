"""`gateway serve --ray` refuses bad options before it imports Ray or starts anything."""

from __future__ import annotations

import subprocess
import sys

from tests.support.server import REPO


def test_serve_ray_refuses_bad_options_before_starting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--ray"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_RAY_MIN_REPLICAS": "many"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "GATEWAY_RAY_MIN_REPLICAS" in done.stderr and "many" in done.stderr
