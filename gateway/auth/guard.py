"""The guard in front of every route: key, scope, then the key's rate limits.

Failed authentications are logged with the client's address and, for a wrong key, the first
digits of its SHA-256 (never the key), and each address may send wrong keys only so often per
minute (a missing key is logged, at most KEYLESS_LOG_LINES_PER_MINUTE lines an address, but
not counted).
Public routes (liveness) stay open; a key sent to them is still checked, so that /health can
show its details to an operator's key (scope admin or metrics) and only up/down to anyone
else. A wrong key there is a failure like any other, and an address over its limit is answered
there as if it sent no key.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from cachetools import TTLCache
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.api.auth import Headers, presented_key
from gateway.api.bodies import refuse_undecoded_codings
from gateway.auth.keys import ApiKey, KeyRing, Scope, digest_of, fingerprint
from gateway.auth.limits import TokenBucket, retry_after_seconds
from gateway.errors import Busy, GatewayError, InvalidRequest, Unauthorized
from gateway.logs import loggable
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Routes that change what the server holds, and the operator's own views.
ADMIN_PATHS = frozenset({"/api/pull", "/api/delete"})
ADMIN_PREFIX = "/admin/"
# Counts by model, route and key-free status, and memory: the operator's (and a scraper's).
METRICS_PATH = "/metrics"
# Body fields that carry the units an inputs-per-minute limit counts, across the API families.
INPUT_FIELDS = ("input", "inputs", "texts", "documents", "contents", "images", "content")
# Addresses whose failures are remembered; beyond it the oldest are forgotten.
TRACKED_ADDRESSES = 65536
# Log lines an address gets a minute for requests without a key. Those are not counted as
# failures (they guess nothing), so nothing else bounds them: a keyless flood would otherwise
# write one WARNING line per request.
KEYLESS_LOG_LINES_PER_MINUTE = 60
AUTHENTICATED_SCOPE = "gateway_api_key_scope"
# Scopes shown /health's detail (model states, memory, GPU): the operator's facts, which
# /metrics and /admin/models show them already. An embedding client's key gets the status only,
# as a caller without a key does.
HEALTH_DETAIL_SCOPES = frozenset({Scope.ADMIN, Scope.METRICS})


class Forbidden(GatewayError):
    status_code = 403
    code = "insufficient_scope"


class RateLimited(Busy):
    """429 in every family, with Retry-After."""

    status_code = 429
    code = "rate_limit_exceeded"


def required_scope(path: str) -> Scope:
    if path in ADMIN_PATHS or path.startswith(ADMIN_PREFIX):
        return Scope.ADMIN
    return Scope.METRICS if path == METRICS_PATH else Scope.EMBED


def count_inputs(body: bytes) -> int:
    """Texts, images or documents in a request body; at least 1 (the handler judges validity)."""
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return 1
    if not isinstance(document, dict):
        return 1
    total = 0
    for name in INPUT_FIELDS:
        value = document.get(name)
        if isinstance(value, list):
            # A flat list of integers is one input of token ids (OpenAI's); a list of such
            # lists is one input each. Which it is shows in the first item.
            total += 1 if value and isinstance(value[0], int) else len(value)
        elif value is not None:
            total += 1
    return max(total, 1)


def authenticated_scope(connection: ASGIConnection[Any, Any, Any, Any]) -> Scope | None:
    """The scope of the key a public route's request was authenticated with, if any (what
    /health's detail depends on)."""
    state: dict[str, Any] = connection.scope.get("state", {})
    scope = state.get(AUTHENTICATED_SCOPE)
    return scope if isinstance(scope, Scope) else None


def sees_health_detail(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether /health may show this request its detail: keys are off, or its key's scope is
    one of HEALTH_DETAIL_SCOPES."""
    authenticator: Authenticator = connection.app.state.auth
    if not authenticator.enabled:
        return True
    return authenticated_scope(connection) in HEALTH_DETAIL_SCOPES


class Authenticator:
    def __init__(self, ring: KeyRing, failures_per_minute: int) -> None:
        self.ring = ring
        self.failures_per_minute = failures_per_minute
        self._failures: TTLCache[str, TokenBucket] = TTLCache(TRACKED_ADDRESSES, ttl=60)
        self._keyless_lines: TTLCache[str, TokenBucket] = TTLCache(TRACKED_ADDRESSES, ttl=60)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        ring = KeyRing.from_settings(settings.api_keys, settings.api_keys_file)
        return cls(ring, settings.auth_failures_per_minute)

    @property
    def enabled(self) -> bool:
        return self.ring.enabled

    async def check(self, connection: ASGIConnection[Any, Any, Any, Any], public: bool) -> None:
        if not self.enabled:
            return
        presented = presented_key(connection.headers)
        address = connection.client.host if connection.client else "unknown"
        if public:
            self._check_public(connection, presented, address)
            return
        self._refuse_if_failing(address)
        if presented is None:
            # Logged, not counted: a request without a key guesses nothing, and counting it
            # would let one keyless client (a scraper left without its key file, a script
            # missing its header) lock out every client behind the same address.
            self._keyless(connection, address)
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        key = self.ring.find(presented)
        if key is None:
            self._failed(connection, address, f"unknown key {fingerprint(digest_of(presented))}")
            raise Unauthorized("invalid API key")
        needed = required_scope(connection.url.path)
        if not key.scope.grants(needed):
            log.warning(
                "key '%s' (scope %s) refused on %s: needs scope %s",
                key.name,
                key.scope.value,
                loggable(connection.url.path),
                needed.value,
            )
            # Which scope would do: a scraper given an embed key is told what to ask for.
            also = "" if needed is Scope.ADMIN else " or admin"
            raise Forbidden(
                f"this API key's scope does not allow {connection.url.path} "
                f"(it needs scope {needed.value}{also})"
            )
        if key.limited:
            await self._charge(connection, key)

    def admits_quietly(self, headers: Headers, address: str, path: str) -> bool:
        """Whether `check` would let a non-public request through with nothing to log, charge
        or refuse: keys are off, or a known key with the path's scope and no rate limits comes
        from an address not refused for failures. Anything else the guard itself must decide."""
        if not self.enabled:
            return True
        presented = presented_key(headers)
        key = self.ring.find(presented) if presented else None
        if key is None or key.limited or not key.scope.grants(required_scope(path)):
            return False
        return self._failure_wait(address) <= 0

    def _check_public(
        self, connection: ASGIConnection[Any, Any, Any, Any], presented: str | None, address: str
    ) -> None:
        """A public route answers everyone; a valid key of an operator's scope only adds detail
        (/health's full view).
        So that it is no unmetered key oracle, a wrong key counts as a failure, logged, as on
        any route; and an address over its failure limit gets the keyless answer whatever it
        sends. Not a 429: a load balancer's health check (keyless, or with a stale key) from
        that address must keep seeing the server up."""
        if presented is None or self._failure_wait(address) > 0:
            return
        key = self.ring.find(presented)
        if key is None:
            self._failed(connection, address, f"unknown key {fingerprint(digest_of(presented))}")
            return
        self._remember(connection, key)

    def _keyless(self, connection: ASGIConnection[Any, Any, Any, Any], address: str) -> None:
        """Log a request without a key, not counted as a failure: at most
        KEYLESS_LOG_LINES_PER_MINUTE lines an address, the last saying that more are left out."""
        bucket = self._keyless_lines.get(address)
        if bucket is None:
            bucket = self._keyless_lines[address] = TokenBucket(KEYLESS_LOG_LINES_PER_MINUTE)
        if bucket.wait_for(1) > 0:
            return
        bucket.take(1)
        reason = "no key presented"
        if bucket.wait_for(1) > 0:
            reason += " (more from this address are not logged for a minute)"
        self._failed(connection, address, reason, counted=False)

    def _remember(self, connection: ASGIConnection[Any, Any, Any, Any], key: ApiKey) -> None:
        """Note a public route's key scope in the request's state (authenticated_scope)."""
        connection.scope.setdefault("state", {})[AUTHENTICATED_SCOPE] = key.scope

    def _failure_wait(self, address: str) -> float:
        """Seconds until `address` may try a key again (0: it is not refused)."""
        bucket = self._failures.get(address)
        return bucket.wait_for(1) if bucket is not None else 0.0

    def _refuse_if_failing(self, address: str) -> None:
        wait = self._failure_wait(address)
        if wait > 0:
            raise RateLimited(
                "too many failed authentications from this address",
                retry_after=retry_after_seconds(wait),
            )

    def _failed(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        address: str,
        reason: str,
        *,
        counted: bool = True,
    ) -> None:
        if counted:
            bucket = self._failures.get(address)
            if bucket is None:
                bucket = self._failures[address] = TokenBucket(self.failures_per_minute)
            bucket.take(1)
        # The path is the client's (decoded: "%0a" a newline), as may be the address (proxy).
        where = loggable(address), loggable(connection.url.path)
        log.warning("authentication failed from %s on %s: %s", *where, reason)

    async def _charge(self, connection: ASGIConnection[Any, Any, Any, Any], key: ApiKey) -> None:
        """Take one request and the body's inputs from the key's allowance, or refuse with 429."""
        inputs = 0
        if key.inputs is not None and isinstance(connection, Request):
            # Guards run before `before_request`: a body the routes refuse unread (415) is
            # refused here too, before it is read, counted or charged.
            refuse_undecoded_codings(connection)
            inputs = count_inputs(await connection.body())  # cached: the handler reads it again
            if key.inputs_per_minute is not None and inputs > key.inputs_per_minute:
                raise InvalidRequest(
                    f"this request has {inputs} inputs; its API key may send at most "
                    f"{key.inputs_per_minute} per minute"
                )
        waits = []
        if key.requests is not None:
            waits.append(("requests", key.requests_per_minute, key.requests.wait_for(1)))
        if key.inputs is not None:
            waits.append(("inputs", key.inputs_per_minute, key.inputs.wait_for(inputs)))
        over = [(what, limit, wait) for what, limit, wait in waits if wait > 0]
        if over:
            what, limit, wait = max(over, key=lambda item: item[2])
            log.info("key '%s' over its limit of %s %s per minute", key.name, limit, what)
            raise RateLimited(
                f"rate limit exceeded: this API key may send {limit} {what} per minute",
                retry_after=retry_after_seconds(wait),
            )
        if key.requests is not None:
            key.requests.take(1)
        if key.inputs is not None:
            key.inputs.take(inputs)


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard; async, or Litestar would run it in a worker thread."""
    authenticator: Authenticator = connection.app.state.auth
    await authenticator.check(connection, public=bool(handler.opt.get("public")))
