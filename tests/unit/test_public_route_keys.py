"""Keys sent to public routes (/health): counted and limited like anywhere else (no server)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.auth.guard import Authenticator, RateLimited, authenticated_scope
from gateway.auth.keys import KeyRing, Scope
from gateway.errors import Unauthorized

GOOD = "gw-good-key-5d1e"
WRONG = "gw-wrong-key-77a0"


def connection(key: str | None, path: str = "/health", host: str = "192.0.2.7") -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return SimpleNamespace(
        headers=headers, client=SimpleNamespace(host=host), scope={}, url=SimpleNamespace(path=path)
    )


def check(guard: Authenticator, request: Any, public: bool = True) -> Scope | None:
    """The scope of the key the request is taken to be from (None: answered as without a key)."""
    asyncio.run(guard.check(request, public=public))
    return authenticated_scope(request)


def test_a_wrong_key_on_a_public_route_is_a_logged_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = Authenticator(KeyRing.from_settings([GOOD], None), failures_per_minute=3)
    with caplog.at_level(logging.WARNING, logger="gateway.auth.guard"):
        assert check(guard, connection(WRONG)) is None
    assert "authentication failed from 192.0.2.7 on /health: unknown key" in caplog.text
    assert WRONG not in caplog.text
    assert check(guard, connection(GOOD)) is Scope.ADMIN
    assert check(guard, connection(None)) is None  # no key: nothing to count


def test_over_the_limit_public_routes_answer_as_if_no_key_was_sent() -> None:
    guard = Authenticator(KeyRing.from_settings([GOOD], None), failures_per_minute=3)
    for _ in range(3):
        assert check(guard, connection(WRONG)) is None
    # The address is refused now: /health neither confirms a good key nor refuses the caller...
    assert check(guard, connection(GOOD)) is None
    assert check(guard, connection(None)) is None
    # ...and the failures on /health count on every other route too.
    with pytest.raises(RateLimited):
        check(guard, connection(GOOD, path="/api/embed"), public=False)
    # Another address is not affected.
    assert check(guard, connection(GOOD, host="198.51.100.4")) is Scope.ADMIN
    with pytest.raises(Unauthorized):
        check(guard, connection(WRONG, path="/api/embed", host="198.51.100.4"), public=False)
