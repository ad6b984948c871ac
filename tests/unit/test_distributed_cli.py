"""`gateway serve --ray` refuses bad options before it imports Ray or starts anything, and a
start that fails ends with one line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tools.gateway_server import free_port  # bound, then released: nothing listens
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


def test_an_address_nothing_answers_at_fails_at_once() -> None:
    """ray.init retried such an address for minutes (still at it after 5), logging each try."""
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--ray"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_RAY_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"gateway: Ray Serve did not start: no Ray cluster answers at {address}: Connection refused"
    )
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    "address", ["127.0.0.1:{port}", "localhost:{port}", "ray://127.0.0.1:{port}"]
)
def test_check_reachable_names_the_address_and_the_reason(address: str) -> None:
    from gateway.distributed.cluster import check_reachable

    address = address.format(port=free_port())
    with pytest.raises(ConnectionError) as refused:
        check_reachable(address)
    assert str(refused.value) == f"no Ray cluster answers at {address}: Connection refused"


def test_check_reachable_bounds_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.distributed import cluster

    def silent(target: tuple[str, int], timeout: float) -> None:
        assert (target, timeout) == (("10.1.2.3", 6379), 2.5)
        raise TimeoutError("timed out")

    monkeypatch.setattr(cluster.socket, "create_connection", silent)
    with pytest.raises(ConnectionError, match=r"at 10\.1\.2\.3:6379: no connection within 2\.5 s"):
        cluster.check_reachable("10.1.2.3:6379", timeout=2.5)
    cluster.check_reachable("local")  # nothing to probe: Ray starts or finds one itself


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_check_port_free_names_a_busy_port(host: str) -> None:
    import socket

    from gateway.distributed.cluster import check_port_free

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError) as refused:
            check_port_free(host, port)
        assert str(refused.value) == f"cannot listen on {host}:{port}: Address already in use"
    check_port_free(host, port)  # released: free again, and the check holds nothing
    check_port_free(host, port)
