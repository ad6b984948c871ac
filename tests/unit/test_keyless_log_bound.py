"""Requests without a key are not counted against their address's failure limit, so nothing
else bounds them: each one's log line must be, or a keyless flood (no key needed to send one)
writes a WARNING line per request, as fast as the server answers 401s (no server here)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.auth.guard import KEYLESS_LOG_LINES_PER_MINUTE, Authenticator
from gateway.auth.keys import KeyRing
from gateway.errors import Unauthorized

GOOD = "gw-good-key-5d1e"


def connection(key: str | None, host: str = "192.0.2.7") -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return SimpleNamespace(
        headers=headers,
        client=SimpleNamespace(host=host),
        scope={},
        url=SimpleNamespace(path="/api/embed"),
    )


def test_a_keyless_flood_logs_a_bounded_number_of_lines_and_locks_nobody_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = Authenticator(KeyRing.from_settings([GOOD], None), failures_per_minute=3)
    flood = KEYLESS_LOG_LINES_PER_MINUTE * 5
    with caplog.at_level(logging.WARNING, logger="gateway.auth.guard"):
        for _ in range(flood):
            with pytest.raises(Unauthorized):
                asyncio.run(guard.check(connection(None), public=False))
        other = connection(None, host="198.51.100.4")  # another address has its own lines
        with pytest.raises(Unauthorized):
            asyncio.run(guard.check(other, public=False))
    lines = [r.getMessage() for r in caplog.records if "no key presented" in r.getMessage()]
    from_flood = [line for line in lines if "192.0.2.7" in line]
    assert len(from_flood) == KEYLESS_LOG_LINES_PER_MINUTE
    assert "not logged" in from_flood[-1]  # the operator is told the rest were left out
    assert sum("198.51.100.4" in line for line in lines) == 1
    # Still not counted: a good key from the flooding address is let through (no 429).
    asyncio.run(guard.check(connection(GOOD), public=False))
