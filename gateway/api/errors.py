"""Errors in each API family's shape; every Router installs its family's handler.

- OpenAI and Cohere (`/v1/...`, `/v2/...`): {"error": {"message", "type", "param", "code"}},
  and a full queue is a 429 (OpenAI clients retry it with backoff);
- Ollama, the native routes, Infinity rerank and /admin: {"error": "message"}, a full
  queue a 503;
- TEI's routes: {"error": "message", "error_type": ...} with TEI's statuses (validation 422,
  empty input 400, full queue 429 Overloaded, failed inference 424 Backend, 503 Unhealthy;
  a missing or wrong key 401 Unauthorized, a refused scope or origin 403 Forbidden).
  /embed, POST / and /rerank are shared with other families: the body decides, as in the routes
  (`request_family`), and where it was never read, the path (`path_family`).
`describe` reduces any exception (domain errors, Litestar's own) to what a client needs to
know. Errors raised before a Router is chosen (unknown path, wrong method) go through
`render_error`, which picks the family the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap
from litestar.utils.path import normalize_path

from gateway.api.json_errors import invalid_json_message, received_body
from gateway.errors import Busy, EmptyInput, GatewayError, Unauthorized, UnsupportedEncoding

log = logging.getLogger(__name__)
BODY_TOO_LARGE = (
    "request body too large: it is over the server's limit (GATEWAY_MAX_BODY_BYTES); "
    "send fewer or shorter inputs per request"
)

# OpenAI routes (also Infinity's unprefixed /embeddings and /models), and Cohere's /v1 and /v2
# routes beside them (its SDK reads any JSON error body).
OPENAI_PREFIXES = ("/v1/", "/v2/", "/embeddings", "/models")
# TEI's own paths, and the paths it shares with other families with the body key that makes a
# request TEI's (gateway/api/tei.py and rerank.py decide the same way).
TEI_PATHS = ("/embed_all", "/embed_sparse", "/similarity", "/tokenize", "/decode")
TEI_BODY_KEY = {"/embed": "inputs", "/": "inputs", "/rerank": "texts"}
Family = Literal["openai", "ollama", "tei"]
# TEI's own kinds, and two of ours for its key check: TEI's --api-key refusal is a bare 401
# without a body, so it has no kind to copy, and a missing key is not a validation error.
TeiErrorType = Literal[
    "Validation", "Empty", "Overloaded", "Backend", "Unhealthy", "Unauthorized", "Forbidden"
]


@dataclass(frozen=True)
class ErrorInfo:
    status: int
    message: str
    code: str | None = None
    param: str | None = None
    retry_after: int | None = None


def describe(exc: Exception, body: bytes | None = None) -> ErrorInfo:
    """Reduce any exception to what a client needs to know (`body`: the request's, if read)."""
    if isinstance(exc, GatewayError):
        return ErrorInfo(
            exc.status_code,
            exc.message,
            exc.code,
            exc.param,
            exc.retry_after if isinstance(exc, Busy) else None,
        )
    if isinstance(exc, ValidationException):
        return _validation_info(exc)
    if isinstance(exc, NotFoundException):
        return ErrorInfo(404, "404 page not found", "not_found")
    if isinstance(exc, MethodNotAllowedException):
        return ErrorInfo(405, "405 method not allowed", "method_not_allowed")
    if isinstance(exc, ClientException) and isinstance(exc.__cause__, SerializationException):
        # msgspec's own words ("Input data was truncated") do not say what is wrong.
        return ErrorInfo(400, invalid_json_message(str(exc.detail), body), "invalid_request")
    if isinstance(exc, ClientException) and exc.status_code == 413:
        # Litestar's words ("Request Entity Too Large") do not say which limit was hit.
        return ErrorInfo(413, BODY_TOO_LARGE, "invalid_request")
    if isinstance(exc, ClientException):
        return ErrorInfo(exc.status_code, str(exc.detail), "invalid_request")
    if isinstance(exc, HTTPException):
        return ErrorInfo(exc.status_code, str(exc.detail), None)
    log.exception("unhandled error", exc_info=exc)
    return ErrorInfo(500, f"internal error: {type(exc).__name__}", "internal_error")


def _validation_info(exc: ValidationException) -> ErrorInfo:
    problems = exc.extra if isinstance(exc.extra, list) else []
    if not problems:
        return ErrorInfo(400, str(exc.detail), "invalid_request")
    first = problems[0]
    key, message = str(first.get("key", "")), str(first.get("message", exc.detail))
    if key == "data" and message == "'data'":
        return ErrorInfo(400, "missing request body", "invalid_request")
    if key == "data":
        return ErrorInfo(400, f"request body: {message}", "invalid_request")
    return ErrorInfo(400, f"{key}: {message}", "invalid_request", param=key.split("[")[0])


def _openai_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _tei_status(exc: Exception, info: ErrorInfo) -> tuple[int, TeiErrorType]:
    """TEI's status and error_type for an error (its router/src/http/server.rs mapping)."""
    if isinstance(exc, Busy):
        return 429, "Overloaded"
    if isinstance(exc, EmptyInput):
        return 400, "Empty"
    if info.status == 400:
        return 422, "Validation"
    if info.code == "inference_failed":
        return 424, "Backend"
    if info.status == 503:
        return 503, "Unhealthy"
    if info.status == 401:
        return 401, "Unauthorized"
    if info.status == 403:
        return 403, "Forbidden"
    return info.status, "Backend" if info.status >= 500 else "Validation"


def _as_routed(path: str) -> str:
    """`path` as Litestar routes it ("/embed/" and "//embed" are /embed); empty stays empty
    (no request line arrived), not "/", which is a TEI path."""
    return normalize_path(path) if path else path


def path_family(path: str) -> Family:
    """The family by path alone, for errors whose request body was never read: a 401 or 403
    before reading, a 413 or 415, a wrong method, the connection's own 400/408/431. On the
    paths TEI shares it is TEI's: its shape is Ollama's {"error"} plus `error_type`, at the
    same status, so the other family's clients read it as well."""
    path = _as_routed(path)
    if path.startswith(OPENAI_PREFIXES):
        return "openai"
    return "tei" if path in TEI_PATHS or path in TEI_BODY_KEY else "ollama"


def request_family(request: Request[Any, Any, Any], body: bytes | None) -> Family:
    """The family of a request's errors (`body`: as read, None if never read): by path, but on a
    path TEI shares, a body that was read decides."""
    path = _as_routed(request.url.path)
    key = TEI_BODY_KEY.get(path)
    if key is None or body is None:
        return path_family(path)
    try:  # the routes' own decoder: a body they refuse is nobody's, so not TEI's either
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return "ollama"
    return "tei" if isinstance(data, dict) and key in data else "ollama"


def openai_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _render(exc, request, "openai")


def ollama_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _render(exc, request, "ollama")


def tei_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """TEI's shape for TEI's requests; Ollama's for the others on a shared path."""
    return _render(exc, request, request_family(request, received_body(request)))


OPENAI_ERRORS: ExceptionHandlersMap = {Exception: openai_error}
OLLAMA_ERRORS: ExceptionHandlersMap = {Exception: ollama_error}
TEI_ERRORS: ExceptionHandlersMap = {Exception: tei_error}


def render_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """For errors no Router handled (routing itself, a refusal at shutdown)."""
    return _render(exc, request, request_family(request, received_body(request)))


@dataclass(frozen=True)
class ErrorAnswer:
    """An error as its family sends it: status, JSON body and headers."""

    status: int
    body: dict[str, object]
    headers: dict[str, str]


def error_answer(exc: Exception, body: bytes | None, family: Family) -> ErrorAnswer:
    """`exc` in `family`'s shape (`body`: the request's, if read). Litestar's handlers and the
    fast lane (gateway.api.fast_lane) both answer with this."""
    info = describe(exc, body)
    status = info.status
    if family == "openai" and isinstance(exc, Busy):
        status = 429  # OpenAI clients retry 429 with backoff; Ollama clients expect 503
    headers: dict[str, str] = {}
    if info.retry_after is not None:
        headers["Retry-After"] = str(info.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, UnsupportedEncoding):  # the codings it does take (RFC 9110 15.5.16)
        headers["Accept-Encoding"] = "identity"
    if isinstance(exc, MethodNotAllowedException) and exc.headers:
        # The router names the path's methods in Allow, which a 405 must carry (RFC 9110 15.5.6)
        headers.update(exc.headers)
    if family == "tei":
        status, error_type = _tei_status(exc, info)
        document: dict[str, object] = {"error": info.message, "error_type": error_type}
    else:
        document = _body(
            status, info.message, info.code, info.param, openai_shape=family == "openai"
        )
    return ErrorAnswer(status, document, headers)


def _render(exc: Exception, request: Request[Any, Any, Any], family: Family) -> Response[Any]:
    answer = error_answer(exc, received_body(request), family)
    return Response(
        answer.body,
        status_code=answer.status,
        headers=answer.headers,
        media_type="application/json",
    )


def _body(
    status: int, message: str, code: str | None, param: str | None, *, openai_shape: bool
) -> dict[str, object]:
    if openai_shape:
        return {
            "error": {
                "message": message,
                "type": _openai_type(status),
                "param": param,
                "code": code,
            }
        }
    return {"error": message}


def protocol_error_body(
    path: str, status: int, message: str, code: str, *, tei_error_type: TeiErrorType = "Validation"
) -> bytes:
    """A family's error body (by `path_family`: no body is read) for answers written below
    Litestar, by the connection itself (gateway/connection_answers.py). `path` may be empty: the
    request line did not arrive, and the Ollama shape is the default."""
    family = path_family(path)
    if family == "tei":
        return json.dumps({"error": message, "error_type": tei_error_type}).encode()
    openai_shape = family == "openai"
    return json.dumps(_body(status, message, code, None, openai_shape=openai_shape)).encode()
