"""Stop working for clients that have gone away.

ASGI servers keep running a handler after its client disconnects. Embedding work can take
seconds, so the handler's work races a watcher of the connection: if the client leaves first,
the work is cancelled, which drops the request's still-queued inputs from the model's batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from litestar import Request

from gateway.errors import GatewayError

T = TypeVar("T")


class ClientClosedRequest(GatewayError):
    """nginx's and Ollama's 499: nobody reads this response, it only goes to the log."""

    status_code = 499
    code = "client_closed_request"


async def _disconnected(request: Request) -> None:
    # The body has been read by now, so the next message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise ClientClosedRequest("request canceled")
    return task.result()
