"""Kubernetes-style probes: liveness says the process answers, readiness says send it work.

Readiness turns 503 the moment shutdown begins (SIGTERM), while the listener still accepts, so
load balancers stop routing here before the port closes; liveness stays 200 until exit.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get

from gateway.api.auth import PUBLIC
from gateway.api.draining import Drain, ShuttingDown


class StatusView(msgspec.Struct):
    """A probe's answer, and /health's to callers without a key."""

    status: str


class ProbesController(Controller):
    path = "/health"
    tags = ["Health"]

    @get("/live", opt=PUBLIC, summary="Liveness: 200 while the process serves HTTP")
    async def live(self) -> StatusView:
        return StatusView("alive")

    @get("/ready", opt=PUBLIC, summary="Readiness: 503 once shutdown has begun")
    async def ready(self, request: Request[Any, Any, Any]) -> StatusView:
        drain: Drain | None = request.app.state.get("drain")
        if drain is not None and drain.draining:
            raise ShuttingDown("shutting down: not accepting new work")
        return StatusView("ready")
