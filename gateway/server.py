"""Run the app under uvicorn with bounded connections and a graceful, bounded shutdown.

On SIGTERM or SIGINT: readiness turns 503 at once; after `drain_delay` the listener closes and
uvicorn waits for in-flight requests; one second before `shutdown_grace` runs out, requests still
without an answer are answered 503 (gateway.api.draining), so the process exits within the grace
with every request answered. A second signal exits at once. SIGHUP reloads the API keys file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn
from litestar import Litestar
from litestar.types import ASGIApp

from gateway.api.app import create_app
from gateway.api.draining import Drain
from gateway.connections import ConnectionLimits, bounded_protocol
from gateway.errors import StartupFailed
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Left at the end of the grace for 503 answers to be written and the models to be released.
ANSWER_MARGIN_SECONDS = 1.0
# File descriptors kept beyond the connection cap: model files, logs, the listener, threads.
SPARE_FDS = 256


class GatewayUvicorn(uvicorn.Server):
    """uvicorn.Server whose exit signal first drains, then closes, then answers what is left."""

    def __init__(self, config: uvicorn.Config, settings: Settings, drain: Drain) -> None:
        super().__init__(config)
        self.settings = settings
        self.drain = drain
        self._timers: list[asyncio.TimerHandle] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """As uvicorn's, but a SIGINT ends the process where uvicorn would re-raise it, once
        the server has stopped (its lifespan shutdown included), as SIGTERM's re-raise does.
        Re-raised, SIGINT became a KeyboardInterrupt inside asyncio's runner (a logged traceback
        of the cancelled lifespan), and the exit then waited for every worker thread: a batch on
        the device thread, a pull in the default executor, past the grace."""
        with super().capture_signals():
            try:
                yield
            finally:
                if signal.SIGINT in self._captured_signals:
                    logging.shutdown()
                    os._exit(128 + signal.SIGINT)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain.draining:  # a second signal: stop waiting
            self.force_exit = True
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)
        self.drain.begin()
        loop = asyncio.get_event_loop()
        delay = min(self.settings.drain_delay, self.settings.shutdown_grace)
        answer_at = max(delay, self.settings.shutdown_grace - ANSWER_MARGIN_SECONDS)
        self._timers = [
            loop.call_later(delay, self._close_listener),
            loop.call_later(answer_at, self.drain.answer_in_flight),
        ]

    def _close_listener(self) -> None:
        self.should_exit = True


def uvicorn_config(settings: Settings, app: object) -> uvicorn.Config:
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout,
        read_timeout=settings.read_timeout,
        write_timeout=settings.write_timeout,
        max_header_bytes=settings.max_header_bytes,
    )
    grace_left = max(settings.shutdown_grace - settings.drain_delay, 0.0)
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        http=bounded_protocol(limits),
        # No WebSocket routes: an Upgrade: websocket request is then served as plain HTTP (JSON
        # answers, a 404 for unknown paths) instead of being upgraded and refused 403 text/plain.
        ws="none",
        log_level=settings.log_level,
        access_log=False,
        log_config=None,  # uvicorn's loggers propagate to gateway.logs' set-up
        # Beyond this many open connections (or running requests) new requests get 503.
        limit_concurrency=settings.max_connections,
        backlog=min(settings.max_connections, 2048),
        timeout_keep_alive=max(1, math.ceil(settings.idle_timeout)),
        h11_max_incomplete_event_size=settings.max_header_bytes,  # if h11 is ever chosen
        timeout_graceful_shutdown=max(1, math.ceil(grace_left)),
        # The client's address comes from X-Forwarded-For only when a trusted proxy sent it;
        # with none trusted uvicorn's proxy-header middleware is left out altogether.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=(
            "*" if "*" in settings.trusted_proxies else list(settings.trusted_proxies)
        ),
    )


def raise_fd_limit(wanted: int) -> None:
    """Lift the soft open-files limit towards the hard one so the connection cap is reachable."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning(
            "open-files limit %d is below the connection cap plus spares (%d)", hard, wanted
        )


def run_server(settings: Settings) -> None:
    """Serve until a signal; returns after a graceful shutdown."""
    raise_fd_limit(settings.max_connections + SPARE_FDS)
    drain = Drain()
    app = create_app(settings, drain=drain)
    keys = app.state.auth.ring
    signal.signal(signal.SIGHUP, lambda sig, frame: keys.request_reload())
    server = GatewayUvicorn(uvicorn_config(settings, quiet_startup_failure(app)), settings, drain)
    try:
        server.run()
    except SystemExit:  # uvicorn's exit code 3 when the lifespan's start-up fails
        error = app.state.get("startup_error")
        if isinstance(error, StartupFailed):
            raise error from None  # `gateway serve` prints one `gateway: ...` line, exit 2
        raise


def quiet_startup_failure(app: Litestar) -> ASGIApp:
    """A preload failure is reported once, in one line, by `gateway serve`: Litestar's
    traceback of it (the lifespan's failure message, which uvicorn logs) is left out."""

    # Any: Litestar's ASGI types leave out the lifespan scope and its messages.
    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def quiet(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed" and app.state.get("startup_error"):
                message = {"type": "lifespan.startup.failed", "message": ""}
            await send(message)

        # uvicorn has been told; run_server raises it once the server has stopped.
        with contextlib.suppress(StartupFailed):
            await app(scope, receive, quiet)

    return guarded
