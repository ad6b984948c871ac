"""Connecting to Ray: join a cluster, or start one on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray


def start_local_or_join(address: str | None, **init_args: Any) -> None:
    """Join the cluster at `address`, or start a one-machine Ray bound to loopback."""
    if address is not None:
        ray.init(address=address, **init_args)
        return
    ray.init(_node_ip_address="127.0.0.1", runtime_env=worker_env(), **init_args)


def worker_env() -> dict[str, Any]:
    """Runtime env for a cluster started from a source checkout: workers import `gateway` from
    the same tree (an installed package is found anyway)."""
    import gateway

    paths = [str(Path(gateway.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}}
