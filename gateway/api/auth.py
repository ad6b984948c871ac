"""API-key guard: `Authorization: Bearer <key>`, `X-API-Key: <key>` or `api-key: <key>`.

Handlers marked `opt={"public": True}` (liveness: `GET /`, `/health`, `/api/version`) stay open.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.errors import Unauthorized

PUBLIC = {"public": True}
Connection = ASGIConnection[Any, Any, Any, Any]


def presented_key(connection: Connection) -> str | None:
    headers = connection.headers
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None


def key_matches(presented: str, keys: tuple[str, ...]) -> bool:
    """Compare against every key without stopping early, each in constant time."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


Guard = Callable[[Connection, BaseRouteHandler], Awaitable[None]]


def api_key_guard(keys: tuple[str, ...]) -> Guard:
    """A guard that admits requests presenting one of `keys` (all, when there are none)."""

    # async: Litestar would run a plain function in a worker thread, one hop per request.
    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if not keys or handler.opt.get("public"):
            return
        presented = presented_key(connection)
        if presented is None:
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        if not key_matches(presented, keys):
            raise Unauthorized("invalid API key")

    return guard
