"""Where a request carries its API key: `Authorization: Bearer <key>`, `X-API-Key: <key>` or
`api-key: <key>`. The guard itself (keys, scopes, limits) is gateway.auth.guard.

Handlers marked `opt={"public": True}` (liveness: `GET /`, `/health`, `/api/version`) stay open.
"""

from __future__ import annotations

from typing import Protocol

PUBLIC = {"public": True}


class Headers(Protocol):
    """Lower-case header lookup: Litestar's `connection.headers`, or a plain dict."""

    def get(self, key: str, /) -> str | None: ...


def presented_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None
