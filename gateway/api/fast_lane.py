"""The fast lane: plain text-embedding requests of every wire family on a lean ASGI path.

Litestar's layers (CORS and exception middleware, routing, the guard, dependency injection,
signature parsing, the response pipeline) cost ~0.13 ms of CPU per request. Measured with the
lane on and off (GATEWAY_FAST_LANE=0), MiniLM on OpenVINO bf16, 2 cores, bench.lean_load:
64 clients of one cached text: 195-234 us of server CPU per request against 326-365, 4,100-5,200
requests/s against 2,700-3,200; 64 clients of one uncached sentence 0.74-0.89x the raw runtime's
throughput against 0.69-0.81x; one short text at one client 2.28-2.42 ms against 2.41-2.65.

The lane takes only requests Litestar would hand straight to the handler: POST to one of its
paths, no `Origin` header (CORS stays Litestar's), a body in no content coding but identity,
within the size limit, that decodes into the route's body type (decoded whole, then converted
with the same coercion rules; on a path two shapes share, the one the route would pick), and,
with keys on, a known key with the route's scope, no rate limits, from an address not refused
for failed logins. Any other request goes to Litestar with the bytes already read handed back
unchanged, so validation errors, CORS, 401/403/415/429 and every other route keep their one
implementation. The answer comes from the function the Litestar handler itself calls, and
errors raised there are rendered by the same `error_answer`, so both paths send the same bytes
(tests/api/test_fast_lane.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import msgspec
from litestar.types import HTTPScope
from litestar.utils.scope.state import ScopeState

from gateway import metrics
from gateway.api import cohere_embed, native, ollama, openai, tei
from gateway.api.bodies import mark_shallow, unsupported_codings
from gateway.api.disconnect import Receive
from gateway.api.errors import Family, error_answer
from gateway.api.json_errors import MAX_DEPTH, nests_deeper_than
from gateway.api.ollama_wire import EmbedBody
from gateway.api.ollama_wire import EmbeddingsBody as LegacyBody
from gateway.api.responses import Message, Scope, Send, send_json, truncated_headers
from gateway.auth.guard import Authenticator
from gateway.services import EmbeddingService, EmbedResult

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
B = TypeVar("B")
# The route's answer (a struct or TEI's bare list of vectors) and the result it came from.
Answer = Callable[[B, EmbeddingService, Receive], Awaitable[tuple[Any, EmbedResult]]]

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class LaneRoute(Generic[B]):
    family: Family
    body: type[B]
    answer: Answer[B]
    # On a path two body shapes share: whether a decoded body is this route's.
    takes: Callable[[Any], bool] | None = None


def _native_body(raw: Any) -> bool:
    return not tei.is_tei_embed_body(raw)


def lane_routes() -> dict[str, tuple[LaneRoute[Any], ...]]:
    """Per path, the body shapes the lane answers."""
    embed = LaneRoute("ollama", EmbedBody, ollama.embed_answer)
    legacy = LaneRoute("ollama", LegacyBody, ollama.embeddings_answer)
    embeddings = LaneRoute("openai", openai.EmbeddingsBody, openai.embeddings_answer)
    # /embed and POST /: TEI's body (`inputs`) or nomic-api-rs's (`input`).
    tei_embed = LaneRoute("tei", tei.TeiEmbedBody, tei.tei_embed_answer, tei.is_tei_embed_body)
    native_shared = LaneRoute("ollama", native.EmbedBody, native.embed_one_answer, _native_body)
    # Cohere's v1 and v2 share the body.
    cohere_v1 = LaneRoute("openai", cohere_embed.CohereEmbedBody, cohere_embed.cohere_v1_answer)
    cohere_v2 = LaneRoute("openai", cohere_embed.CohereEmbedV2Body, cohere_embed.cohere_v2_answer)
    native_one = LaneRoute("ollama", native.EmbedBody, native.embed_one_answer)
    native_batch = LaneRoute("ollama", native.BatchBody, native.batch_answer)
    # /embeddings: Infinity's unprefixed alias of the OpenAI route.
    return {
        "/api/embed": (embed,),
        "/api/embeddings": (legacy,),
        "/v1/embeddings": (embeddings,),
        "/embeddings": (embeddings,),
        "/embed": (tei_embed, native_shared),
        "/": (tei_embed, native_shared),
        "/v1/embed": (cohere_v1,),
        "/v2/embed": (cohere_v2,),
        "/txt/embed": (native_one,),
        "/batch": (native_batch,),
        "/txt/batch": (native_batch,),
    }


class _Replay:
    """A receive that first hands back the messages the lane already took."""

    def __init__(self, taken: list[Message], receive: Receive) -> None:
        self.taken = taken
        self.receive = receive

    async def __call__(self) -> Message:
        if self.taken:
            return self.taken.pop(0)
        return dict(await self.receive())


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-case names to values; the first of repeated names, as Litestar's `get` gives."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """(messages taken, the whole body), or (messages taken, None) when the body is over
    `limit` or the client left: then Litestar answers, from the replayed messages."""
    taken: list[Message] = []
    size = 0
    while True:
        message = dict(await receive())
        taken.append(message)
        if message["type"] != "http.request":
            return taken, None
        size += len(message.get("body", b""))
        if size > limit:
            return taken, None
        if not message.get("more_body", False):
            return taken, b"".join(m.get("body", b"") for m in taken)


def _unsupported_coding(scope: Scope) -> bool:
    """Whether any Content-Encoding header names a coding Litestar answers 415 to (before it
    reads the body: bodies.refuse_bad_bodies)."""
    values = (v.decode("latin-1") for n, v in scope["headers"] if n == b"content-encoding")
    return bool(unsupported_codings(values))


def _decoded(
    routes: tuple[LaneRoute[Any], ...], body: bytes | None, scope: Scope
) -> tuple[LaneRoute[Any], Any] | None:
    """The route `body` is for and the body as its type, or None: Litestar then words the
    error in its shape.

    As Litestar does: the whole document is decoded first (so bad UTF-8 or an out-of-range
    number in a field no route declares is still refused), then converted with its coercion
    rules (strict=False). A body nested past MAX_DEPTH goes to Litestar, which refuses it
    (bodies.refuse_bad_bodies).
    """
    if body is None or nests_deeper_than(body, MAX_DEPTH):
        return None
    mark_shallow(scope)  # a body handed on to Litestar is not counted a second time
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    route = next((r for r in routes if r.takes is None or r.takes(raw)), None)
    if route is None:
        return None
    try:
        return route, msgspec.convert(raw, route.body, strict=False, str_keys=True)
    except msgspec.ValidationError:
        return None


class FastLane:
    """ASGI middleware in front of Litestar's handler (inside the request observer)."""

    def __init__(
        self,
        app: ASGIApp,
        embedding: EmbeddingService,
        auth: Authenticator,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.embedding = embedding
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.routes = lane_routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        routes = None
        if scope["type"] == "http" and scope["method"] == "POST":
            routes = self.routes.get(scope["path"])
        if routes is None:
            await self.app(scope, receive, send)
            return
        taken = await self._take(routes, scope, receive)
        if isinstance(taken, _Replay):
            metrics.fast_lane(answered=False)
            await self.app(scope, taken, send)
            return
        metrics.fast_lane(answered=True)
        route, data, body = taken
        await self._answer(route, data, body, receive, send)

    async def _take(
        self, routes: tuple[LaneRoute[Any], ...], scope: Scope, receive: Receive
    ) -> tuple[LaneRoute[Any], Any, bytes] | _Replay:
        """The route the body is for, the body decoded and as read, or what Litestar needs to
        answer instead (the messages read)."""
        headers = _headers(scope)
        client = scope.get("client")
        address = client[0] if client else "unknown"
        admitted = self.auth.admits_quietly(headers, address, scope["path"])
        declared = headers.get("content-length", "")
        if (
            "origin" in headers
            or not admitted
            or (declared.isdigit() and int(declared) > self.max_body_bytes)
            or ("content-encoding" in headers and _unsupported_coding(scope))
        ):
            return _Replay([], receive)
        taken, body = await _read_body(receive, self.max_body_bytes)
        decoded = _decoded(routes, body, scope)
        if body is None or decoded is None:
            return _Replay(taken, receive)
        # Kept where Litestar keeps a body it read, so an answer written for this request
        # outside the lane (the drain's 503 at shutdown) picks its family from the body, as it
        # does for a request the route was serving.
        ScopeState.from_scope(cast(HTTPScope, scope)).body = body
        return decoded[0], decoded[1], body

    async def _answer(
        self, route: LaneRoute[Any], data: Any, body: bytes, receive: Receive, send: Send
    ) -> None:
        try:
            answer, result = await route.answer(data, self.embedding, receive)
        except Exception as exc:  # as the route's exception handler would answer it
            error = error_answer(exc, body, route.family)
            await send_json(send, error.status, _ENCODER.encode(error.body), error.headers)
            return
        await send_json(send, 200, _ENCODER.encode(answer), truncated_headers(result.truncated))


def with_fast_lane(
    app: Any, embedding: EmbeddingService, auth: Authenticator, max_body_bytes: int
) -> None:
    """Put the lane in front of `app`'s (a Litestar app's) ASGI handler."""
    app.asgi_handler = FastLane(app.asgi_handler, embedding, auth, max_body_bytes)
