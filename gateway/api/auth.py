"""Where a request carries its API key: `Authorization: Bearer <key>`, `X-API-Key: <key>` or
`api-key: <key>`. The guard itself (keys, scopes, limits) is gateway.auth.guard.

Handlers marked `opt={"public": True}` (liveness: `GET /`, `/health`, `/api/version`) stay open.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

PUBLIC = {"public": True}
Connection = ASGIConnection[Any, Any, Any, Any]


def presented_key(connection: Connection) -> str | None:
    headers = connection.headers
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None
