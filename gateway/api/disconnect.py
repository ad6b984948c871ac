"""Stop working for clients that have gone away.

ASGI servers keep running a handler after its client disconnects, and embedding work can take
seconds. A request that is still running after a short while gets a watcher on its connection;
if the client leaves, the handler is cancelled, which drops its still-queued inputs from the
model's batcher. Quick requests (most of them) never pay for a watcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from gateway.errors import GatewayError

T = TypeVar("T")
# The connection's ASGI receive (Litestar's `request.receive`, or the fast lane's).
Receive = Callable[[], Awaitable[Mapping[str, Any]]]

# Requests done sooner than this are not watched: a watcher costs more than they would waste.
WATCH_AFTER_SECONDS = 0.05


class ClientClosedRequest(GatewayError):
    """nginx's and Ollama's 499: nobody reads this response, it only goes to the log."""

    status_code = 499
    code = "client_closed_request"


async def _disconnected(receive: Receive) -> None:
    # The body has been read by now, so the next message is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work` in the handler's task, cancelling it if the client disconnects first."""
    handler = asyncio.current_task()
    assert handler is not None
    loop = asyncio.get_running_loop()
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        await _disconnected(receive)
        gone = True
        handler.cancel()

    def arm() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(WATCH_AFTER_SECONDS, arm)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        handler.uncancel()
        raise ClientClosedRequest("request canceled") from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
