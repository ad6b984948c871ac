"""Graceful shutdown as clients see it: readiness fails first, in-flight work ends in an answer.

`Drain.begin()` (on SIGTERM) turns readiness to 503 while the listener still accepts, so a load
balancer stops sending before the port closes. `Drain.answer_in_flight()` (just before the
shutdown grace runs out) cancels every request that has not started its response and answers it
503 in its API family's shape, instead of letting the server cut the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.errors import render_error
from gateway.errors import GatewayError

log = logging.getLogger(__name__)


class ShuttingDown(GatewayError):
    status_code = 503
    code = "shutting_down"


class _InFlight:
    __slots__ = ("refused", "responded", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.responded = False
        self.refused = False  # cancelled by `answer_in_flight`, to be answered 503


class Drain:
    def __init__(self) -> None:
        self.draining_since: float | None = None
        self._in_flight: set[_InFlight] = set()

    @property
    def draining(self) -> bool:
        return self.draining_since is not None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def begin(self) -> None:
        if self.draining_since is None:
            self.draining_since = time.monotonic()
            log.info("draining: readiness now answers 503 (%d requests in flight)", self.in_flight)

    def answer_in_flight(self) -> int:
        """Cancel the requests that have not responded yet; each is answered 503 (499 where its
        client left at the same moment). Returns how many were cancelled."""
        cancelled = 0
        for request in list(self._in_flight):
            if not (request.responded or request.refused):
                request.refused = True
                request.task.cancel()
                cancelled += 1
        if cancelled:
            log.warning(
                "shutdown grace over: %d in-flight requests cancelled and answered 503 "
                "(499 where the client had left)",
                cancelled,
            )
        return cancelled

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The ASGI app that tracks HTTP requests for `answer_in_flight`."""

        async def tracked(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            # The request runs in the server's own task for it: a child task per request (and
            # a shield around it) cost ~7% of the event loop's time per request. All in this
            # one coroutine: every layer a request passes through costs it a frame.
            task = asyncio.current_task()
            assert task is not None
            request = _InFlight(task)

            async def send_tracked(message: Message) -> None:
                if message["type"] == "http.response.start":
                    request.responded = True
                await send(message)

            self._in_flight.add(request)
            try:
                await app(scope, receive, send_tracked)
            except asyncio.CancelledError:
                # Someone else cancelled too (the server, at the end of the grace), or the
                # answer had begun: nothing to add.
                if not request.refused or task.uncancel() > 0 or request.responded:
                    raise
                await self._refuse(scope, receive, send)
            finally:
                self._in_flight.discard(request)

        return tracked

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any, Any, Any] = Request(scope, receive, send)
        error = ShuttingDown("the server is shutting down; retry on another instance")
        response = render_error(request, error).to_asgi_response(None, request)
        await response(scope, receive, send)
