"""Connecting to Ray: join a cluster, or start one on this machine."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import ray

# How long the address of a cluster to join may take to accept a connection. ray.init itself
# retries an address that never answers for minutes, logging each try, before it gives up.
CONNECT_TIMEOUT_S = 10.0
RAY_CLIENT_PORT = 10001  # ray://host without a port


def start_local_or_join(address: str | None, **init_args: Any) -> None:
    """Join the cluster at `address`, or start a one-machine Ray bound to loopback. An address
    with a host and port that accepts no connection raises ConnectionError within
    CONNECT_TIMEOUT_S, before ray.init."""
    if address is not None:
        check_reachable(address)
        ray.init(address=address, **init_args)
        return
    ray.init(_node_ip_address="127.0.0.1", runtime_env=worker_env(), **init_args)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """ConnectionError naming `address` and the reason where the host:port ray.init would
    connect to (a GCS address, or ray://host[:port] for Ray Client) accepts no TCP connection
    within `timeout`. Where Ray finds no such address (`local`, `auto` with no cluster recorded)
    it is left to ray.init, which says so at once."""
    bootstrap = _bootstrap(address)
    if bootstrap is None:
        return
    try:
        with socket.create_connection(bootstrap, timeout=timeout):
            pass
    except TimeoutError:
        raise ConnectionError(
            f"no Ray cluster answers at {address}: no connection within {timeout:g} s"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectionError(f"no Ray cluster answers at {address}: {reason}") from None


def check_port_free(host: str, port: int) -> None:
    """RuntimeError naming host:port where a listener already holds it. Ray's HTTP proxy would
    fail on it too, but only after the cluster started, and its workers' tracebacks reach the
    terminal before the reason does."""
    try:  # SO_REUSEADDR as uvicorn binds: a port in TIME_WAIT is free to it
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:  # create_server's strerror repeats the address: the errno's text
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise RuntimeError(f"cannot listen on {host}:{port}: {reason}") from None


def _bootstrap(address: str) -> tuple[str, int] | None:
    """The (host, port) ray.init would connect to for `address`, or None."""
    if address.startswith("ray://"):
        target = address.removeprefix("ray://").split("/", 1)[0]
        default = RAY_CLIENT_PORT
    else:
        try:  # as ray.init resolves it: `auto` from RAY_ADDRESS or the last local cluster,
            # localhost as this node's address (where a local cluster listens)
            from ray._private.services import canonicalize_bootstrap_address

            target = canonicalize_bootstrap_address(address) or ""
        except Exception:  # a malformed address, or Ray's internals moved: ray.init decides
            return None
        default = None
    host, colon, port = target.rpartition(":")
    if not colon or "]" in port:  # no port: a bare host, or [v6] alone
        host, port = target, "" if default is None else str(default)
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def worker_env() -> dict[str, Any]:
    """Runtime env for a cluster started from a source checkout: workers import `gateway` from
    the same tree (an installed package is found anyway)."""
    import gateway

    paths = [str(Path(gateway.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}}
