"""API-key guard: `Authorization: Bearer <key>`, `X-API-Key: <key>` or `api-key: <key>`.

Handlers marked `opt={"public": True}` (liveness: `GET /`, `/health`, `/api/version`) stay open.
"""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.errors import Unauthorized

PUBLIC = {"public": True}


def presented_key(connection: ASGIConnection) -> str | None:
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


async def api_key_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    # async: Litestar would run a plain function in a worker thread, one hop per request.
    keys: tuple[str, ...] = connection.app.state.settings.api_keys
    if not keys or handler.opt.get("public"):
        return
    presented = presented_key(connection)
    if presented is None:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    if not key_matches(presented, keys):
        raise Unauthorized("invalid API key")
