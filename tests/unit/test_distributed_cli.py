"""`gateway serve --ray` refuses bad options before it imports Ray or starts anything, and a
start that fails ends with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools.paths import REPO


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


def test_serve_ray_start_failures_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gateway.distributed.serve_app as serve_app
    from gateway.distributed.cli import serve_on_ray
    from gateway.settings import Settings

    def no_cluster(*_: object) -> None:
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by "
            "setting `--address` flag or `RAY_ADDRESS` environment variable."
        )

    monkeypatch.setattr(serve_app, "run", no_cluster)
    assert serve_on_ray(Settings.load(environ={})) == 1
    assert capsys.readouterr().err == (
        "gateway: Ray Serve did not start: Could not find any running Ray instance. Please "
        "specify the one to connect to by setting `--address` flag or `RAY_ADDRESS` environment "
        "variable.\n"
    )
