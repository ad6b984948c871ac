"""The OpenAPI document made exact: error responses in the shape each route really sends them,
and unions as `anyOf`.

Each Router installs its family's exception handler (gateway.api.errors); this module reads
which one a route ends up with and declares the statuses that route can answer with, each with
that family's body: {"error": "message"} (Ollama, native, Infinity rerank, admin),
{"error": {"message", "type", "param", "code"}} (OpenAI, Cohere), or {"error", "error_type"}
(TEI; either TEI's or the plain one on the paths TEI shares with others, where the body decides).

Litestar writes a Python union as `oneOf`, which means "exactly one": an integer matches both
`integer` and `number`, and a full health view also matches the status-only one, so valid
answers broke their own schema. A union means "any of", and the document now says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Schema
from litestar.routes import HTTPRoute

from gateway.api.bodies import BODY_METHODS
from gateway.api.errors import (
    TEI_BODY_KEY,
    TEI_PATHS,
    Family,
    TeiErrorType,
    openai_error,
    tei_error,
)
from gateway.api.openapi_inputs import document_request_bodies


class ErrorResponse(msgspec.Struct):
    """Ollama's error (also the native, TEI/Infinity rerank and admin routes')."""

    error: str


class TeiErrorResponse(msgspec.Struct):
    """TEI's error: what is wrong, and its kind (Validation, Empty, Overloaded, Backend,
    Unhealthy; Unauthorized and Forbidden for a refused key)."""

    error: str
    error_type: TeiErrorType


class OpenAIErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorResponse(msgspec.Struct):
    """OpenAI's error (also Cohere's routes beside it)."""

    error: OpenAIErrorDetail


# What every route may answer besides success: a missing or wrong key, a request that is not
# valid HTTP or headers too slow or too large, a transfer coding besides chunked or an unknown
# method (501) (the connection answers those, in the path's family, gateway/connections.py; on
# routes that take input 400 is also bad input), a browser origin that is not allowed or a
# key's scope (403), a rate limit, a server that is shutting down or (rarely) fails.
EVERY_ROUTE = (400, 401, 403, 408, 429, 431, 500, 501, 503)
# Routes that take a body or name a model: unknown model, body over the size limit; a model
# loaded on demand may be pulled first (GATEWAY_AUTO_PULL), and the source (502) or the models
# folder (507) may fail.
WITH_INPUT = (404, 413, 502, 507)
# Methods with a body: a content coding the server does not decode (bodies.refuse_bad_bodies).
WITH_BODY = (415,)
# Per path extras: a model in use, being pulled or being loaded cannot be deleted.
EXTRA = {"/api/delete": (409,)}
# TEI's statuses besides those: a validation error, a failed inference.
TEI_EXTRA = (422, 424)
# Answered before the body is read (a missing or wrong key, a refused origin or scope, the
# connection's own timeouts, header limits and 501, a body over the limit or in an undecoded
# coding):
# on the paths TEI shares these take the path's family, TEI's (errors.path_family), whichever
# body was coming.
UNREAD_STATUSES = frozenset({401, 403, 408, 413, 415, 431, 501})


def _statuses(path: str, method: str, handler: HTTPRouteHandler) -> list[int]:
    statuses = set(EVERY_ROUTE)
    if _answers_as_tei(path, handler):
        statuses.update(TEI_EXTRA)
    if method in {"POST", "DELETE"} or "{" in path:
        statuses.update(WITH_INPUT)
    if method in BODY_METHODS:
        statuses.update(WITH_BODY)
    statuses.update(EXTRA.get(path, ()))
    if handler.opt.get("public"):  # no key needed; a refused browser origin still gets 403
        statuses.discard(401)
    return sorted(statuses)


def _family(handler: HTTPRouteHandler) -> Family:
    handle = handler.resolve_exception_handlers().get(Exception)
    return "openai" if handle is openai_error else "tei" if handle is tei_error else "ollama"


def _answers_as_tei(path: str, handler: HTTPRouteHandler) -> bool:
    """TEI's handler on one of TEI's paths (own or shared): its shape and statuses apply."""
    return _family(handler) == "tei" and (path in TEI_PATHS or path in TEI_BODY_KEY)


def _error_shape(path: str, handler: HTTPRouteHandler, status: int) -> Any:
    """The error body's type: TEI's on its own paths; on the paths it shares, TEI's for what is
    answered before the body is read, either for the rest (the body decides,
    gateway/api/errors.py)."""
    if _family(handler) == "openai":
        return OpenAIErrorResponse
    if not _answers_as_tei(path, handler):
        return ErrorResponse
    if path in TEI_PATHS or status in UNREAD_STATUSES:
        return TeiErrorResponse
    return ErrorResponse | TeiErrorResponse


def _routes(app: Litestar) -> Iterable[tuple[str, HTTPRouteHandler]]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if handler.include_in_schema:
                    yield route.path_format, handler


def declare_error_responses(app: Litestar) -> None:
    """Add each route's error statuses to its OpenAPI responses (call before the document is
    first served; Litestar builds it lazily)."""
    for path, handler in _routes(app):
        declared = dict(handler.responses or {})
        for method in handler.http_methods:
            for status in _statuses(path, method, handler):
                declared.setdefault(
                    status,
                    ResponseSpec(
                        data_container=_error_shape(path, handler, status),
                        description=HTTPStatus(status).phrase,
                        media_type="application/json",
                        # Litestar's generated examples are random strings, which would
                        # document messages (and TEI error types) no server sends.
                        generate_examples=False,
                    ),
                )
        handler.responses = declared


def unions_as_any_of(node: Any, seen: set[int] | None = None) -> None:
    """Rewrite every `oneOf` in a built OpenAPI object tree as `anyOf`, in place."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, Schema) and node.one_of is not None and node.any_of is None:
        node.any_of, node.one_of = node.one_of, None
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        children: Iterable[Any] = (getattr(node, f.name) for f in dataclasses.fields(node))
    elif isinstance(node, dict):
        children = node.values()
    elif isinstance(node, list | tuple):
        children = node
    else:
        return
    for child in children:
        unions_as_any_of(child, seen)


# Routes whose 200 may also stream, by option: `stream_media_type` names the streamed media type
# (each line one body of the declared schema), beside the single JSON answer.
STREAM_MEDIA_TYPE = "stream_media_type"


def declare_streamed_successes(app: Litestar) -> None:
    """Give each streaming route's 200 its streamed media type too, with the same schema."""
    paths = app.openapi_schema.paths or {}
    for path, handler in _routes(app):
        streamed = handler.opt.get(STREAM_MEDIA_TYPE)
        item = paths.get(path)
        if not streamed or item is None:
            continue
        for method in handler.http_methods:
            operation = getattr(item, method.lower(), None)
            success = operation.responses.get("200") if operation and operation.responses else None
            if isinstance(success, OpenAPIResponse) and success.content:
                single = success.content["application/json"]
                success.content[streamed] = OpenAPIMediaType(schema=single.schema)


def make_exact(app: Litestar) -> None:
    """Declare error responses, then build the document once and fix its unions, streamed
    media types and request bodies (Litestar caches the built document and serves that one).
    The bodies come after the unions: a body's choice of fields is `oneOf`, "exactly one"."""
    declare_error_responses(app)
    unions_as_any_of(app.openapi_schema)
    declare_streamed_successes(app)
    document_request_bodies(app.openapi_schema, _routes(app))
