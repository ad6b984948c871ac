"""Error mapping: each domain error's status and code, and its shape per API family.

OpenAI paths (/v1/, /v2/) answer {"error": {"message", "type", "param", "code"}}; Ollama's and
the native routes answer {"error": "message"}. A busy server is 429 for OpenAI clients (they back
off on it) and 503 for the others, with Retry-After on both.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar import Request
from litestar.exceptions import (
    ClientException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)

from gateway.api.draining import ShuttingDown
from gateway.api.errors import (
    describe,
    path_family,
    protocol_error_body,
    render_error,
    request_family,
)
from gateway.auth.guard import Forbidden
from gateway.batching import InferenceError
from gateway.errors import (
    Busy,
    EmptyInput,
    GatewayError,
    InputTooLong,
    InvalidRequest,
    ModelLoadError,
    ModelNotFound,
    PullFailed,
    Unauthorized,
    UnsupportedEncoding,
    UnsupportedInput,
)

DOMAIN_ERRORS: list[tuple[GatewayError, int, str, str | None]] = [
    (InvalidRequest("bad", param="input"), 400, "invalid_request", "input"),
    (InputTooLong("too long", param="input[3]"), 400, "context_length_exceeded", "input[3]"),
    (UnsupportedInput("no images"), 400, "unsupported_input", None),
    (Unauthorized("no key"), 401, "invalid_api_key", None),
    (UnsupportedEncoding("gzip"), 415, "unsupported_content_encoding", None),
    (ModelNotFound("no such model"), 404, "model_not_found", "model"),
    (ModelLoadError("corrupt"), 500, "model_load_failed", None),
    (PullFailed("hub down"), 502, "pull_failed", None),
    (Busy("queue full", retry_after=5), 503, "server_busy", None),
]


@pytest.mark.parametrize(
    ("error", "status", "code", "param"),
    DOMAIN_ERRORS,
    ids=[type(case[0]).__name__ for case in DOMAIN_ERRORS],
)
def test_domain_errors_keep_status_code_and_param(
    error: GatewayError, status: int, code: str, param: str | None
) -> None:
    info = describe(error)
    assert (info.status, info.code, info.param, info.message) == (
        status,
        code,
        param,
        error.message,
    )
    assert info.retry_after == (5 if isinstance(error, Busy) else None)


def test_framework_errors_get_plain_messages() -> None:
    assert describe(NotFoundException()).status == 404
    assert describe(NotFoundException()).message == "404 page not found"
    assert describe(MethodNotAllowedException()).code == "method_not_allowed"
    field = ValidationException(
        detail="Validation failed", extra=[{"key": "input[2]", "message": "Expected `str`"}]
    )
    info = describe(field)
    assert (info.status, info.message, info.param) == (400, "input[2]: Expected `str`", "input")
    missing = ValidationException(detail="x", extra=[{"key": "data", "message": "'data'"}])
    assert describe(missing).message == "missing request body"


def test_a_body_over_the_limit_names_the_limit() -> None:
    # Litestar raises 413 with "Request Entity Too Large", which does not say which limit.
    info = describe(ClientException(status_code=413, detail="Request Entity Too Large"))
    assert (info.status, info.code) == (413, "invalid_request")
    assert "GATEWAY_MAX_BODY_BYTES" in info.message and "too large" in info.message


def test_unexpected_exceptions_are_500_without_details() -> None:
    info = describe(KeyError("secret internals"))
    assert (info.status, info.code) == (500, "internal_error")
    assert info.message == "internal error: KeyError" and "secret" not in info.message


def request_for(path: str) -> Request[Any, Any, Any]:
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("127.0.0.1", 11434),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
    }
    return Request(scope)  # type: ignore[arg-type]


def rendered(path: str, error: Exception) -> tuple[int, dict[str, str], Any]:
    response = render_error(request_for(path), error)
    body = response.content
    headers = {name.lower(): value for name, value in response.headers.items()}
    return response.status_code, headers, json.loads(json.dumps(body))


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v2/rerank"])
def test_openai_family_shape(path: str) -> None:
    status, _, body = rendered(path, InputTooLong("input[0] is too long", param="input[0]"))
    assert status == 400
    assert body == {
        "error": {
            "message": "input[0] is too long",
            "type": "invalid_request_error",
            "param": "input[0]",
            "code": "context_length_exceeded",
        }
    }


@pytest.mark.parametrize("path", ["/api/embed", "/txt/embed", "/img/embed"])
def test_ollama_and_native_shape(path: str) -> None:
    status, _, body = rendered(path, ModelNotFound("model 'x' not found"))
    assert (status, body) == (404, {"error": "model 'x' not found"})


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [("/v1/embeddings", 429, "rate_limit_error"), ("/api/embed", 503, None)],
)
def test_busy_is_429_for_openai_and_503_elsewhere(path: str, status: int, kind: str | None) -> None:
    got, headers, body = rendered(path, Busy("server busy", retry_after=7))
    assert got == status and headers["retry-after"] == "7"
    if kind is not None:
        assert body["error"]["type"] == kind and body["error"]["code"] == "server_busy"
    else:
        assert body == {"error": "server busy"}


def test_unauthorized_asks_for_a_bearer_token() -> None:
    status, headers, body = rendered("/v1/embeddings", Unauthorized("missing API key"))
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path", ["/v1/embeddings", "/api/embed", "/tokenize", "/embed"])
def test_an_unsupported_coding_names_the_codings_taken(path: str) -> None:
    status, headers, _ = rendered(path, UnsupportedEncoding("Content-Encoding gzip"))
    assert status == 415 and headers["accept-encoding"] == "identity"


def test_server_errors_are_typed_as_such() -> None:
    _, _, body = rendered("/v1/embeddings", ModelLoadError("cannot load model.onnx"))
    assert body["error"]["type"] == "server_error"


TEI_CASES: list[tuple[Exception, int, str]] = [
    (InvalidRequest("inputs[1]: Expected `str`", param="inputs"), 422, "Validation"),
    (InputTooLong("inputs[0] has 602 tokens", param="inputs[0]"), 422, "Validation"),
    (EmptyInput("inputs cannot be empty", param="inputs"), 400, "Empty"),
    (Busy("queue full", retry_after=3), 429, "Overloaded"),
    (InferenceError("inference failed: out of memory"), 424, "Backend"),
    (ShuttingDown("shutting down"), 503, "Unhealthy"),
    (ModelNotFound("model 'x' not found"), 404, "Validation"),
    (ModelLoadError("cannot load model.onnx"), 500, "Backend"),
    (Unauthorized("invalid API key"), 401, "Unauthorized"),
    (Forbidden("this API key's scope does not allow /tokenize"), 403, "Forbidden"),
]


@pytest.mark.parametrize(
    ("error", "status", "error_type"), TEI_CASES, ids=[type(c[0]).__name__ for c in TEI_CASES]
)
@pytest.mark.parametrize("path", ["/embed_all", "/embed_sparse", "/tokenize", "/decode"])
def test_tei_shape_and_statuses(path: str, error: Exception, status: int, error_type: str) -> None:
    """TEI's statuses (router/src/http/server.rs): Validation and Tokenizer 422, Empty 400,
    Overloaded 429, Backend 424, Unhealthy 503."""
    got, headers, body = rendered(path, error)
    assert (got, body) == (status, {"error": str(error), "error_type": error_type})
    if isinstance(error, Busy):
        assert headers["retry-after"] == "3"


@pytest.mark.parametrize(
    ("path", "body", "family"),
    [
        ("/embed", b'{"inputs": ["a"]}', "tei"),
        ("/", b'{"inputs": "a"}', "tei"),
        ("/rerank", b'{"query": "q", "texts": ["a"]}', "tei"),
        ("/embed", b'{"input": "a"}', "ollama"),  # nomic-api-rs's body
        ("/rerank", b'{"query": "q", "documents": ["a"]}', "ollama"),  # Infinity's
        ("/embed", b"{oops", "ollama"),  # read but nobody's body
        ("/embed", b"", "ollama"),  # read, and empty: nomic-api-rs's "missing request body"
        ("/batch", b'{"inputs": ["a"]}', "ollama"),  # the native batch route has `inputs` too
        ("/tokenize", None, "tei"),
        ("/v1/embeddings", None, "openai"),
        ("/api/embed", None, "ollama"),
        # Never read (a 401 before reading, a 413): TEI's shape, Ollama's plus error_type.
        ("/embed", None, "tei"),
        ("/", None, "tei"),
        ("/rerank", None, "tei"),
        # Paths as Litestar routes them: a trailing or doubled slash is the same route.
        ("/embed/", b'{"inputs": "a"}', "tei"),
        ("//embed", b'{"input": "a"}', "ollama"),
        ("/rerank/", None, "tei"),
    ],
)
def test_the_body_decides_on_shared_paths_when_it_was_read(
    path: str, body: bytes | None, family: str
) -> None:
    assert request_family(request_for(path), body) == family


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("", "ollama"),  # no request line: the default
        ("/api/embed", "ollama"),
        ("/embeddings", "openai"),
        ("/v2/rerank", "openai"),
        ("/embed_all", "tei"),
        ("/embed_sparse", "tei"),
        ("/embed", "tei"),
        ("/", "tei"),
        ("/rerank", "tei"),
        ("/api/rerank", "ollama"),
        ("/embed/", "tei"),
        ("//embed_all", "tei"),
        ("/v1//embeddings", "openai"),
        ("/api/embed/", "ollama"),
    ],
)
def test_the_path_alone_decides_where_no_body_was_read(path: str, family: str) -> None:
    assert path_family(path) == family


@pytest.mark.parametrize("path", ["/embed", "/", "/rerank", "/decode"])
def test_connection_refusals_on_tei_paths_have_tei_shape(path: str) -> None:
    body = protocol_error_body(path, 431, "headers too large", "headers_too_large")
    assert json.loads(body) == {"error": "headers too large", "error_type": "Validation"}


@pytest.mark.parametrize("path", ["/embed", "/rerank"])
def test_unauthorized_on_a_shared_path_is_tei_shaped_at_its_status(path: str) -> None:
    """render_error and the TEI handler see no body here (the guard refuses before reading)."""
    status, headers, body = rendered(path, Unauthorized("missing API key"))
    # Not "Validation" (it was): TEI's own 401 has no body, so no kind to copy.
    assert (status, body) == (401, {"error": "missing API key", "error_type": "Unauthorized"})
    assert headers["www-authenticate"] == "Bearer"
