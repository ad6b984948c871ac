"""Request IDs, log formats and metric labels, without a server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from gateway import metrics
from gateway.api.observe import RequestObserver, accepted_request_id
from gateway.auth.guard import Authenticator
from gateway.auth.keys import KeyRing
from gateway.errors import Unauthorized
from gateway.logs import MASK, JsonFormatter, RequestIdFilter, TextFormatter, loggable
from gateway.request_context import begin, current_request_id, end, note_model


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/api/embed", "ollama"), ("/api/embeddings", "ollama"), ("/api/show", "ollama"),
        ("/v1/embeddings", "openai"), ("/v1/models/all-minilm", "openai"),
        ("/v1/rerank", "rerank"), ("/v2/rerank", "rerank"), ("/rerank", "rerank"),
        ("/embed", "native"), ("/img/stats", "native"), ("/txt/batch", "native"),
        ("/api/ps", "lifecycle"), ("/admin/models", "lifecycle"),
        ("/", "meta"), ("/metrics", "meta"), ("/docs/openapi.json", "meta"),
        ("/openapi.json", "meta"),
        ("/api/embedx", "other"), ("/wp-login.php", "other"),
    ],
)  # fmt: skip
def test_route_families_are_a_small_fixed_set(path: str, family: str) -> None:
    assert metrics.route_family(path) == family


@pytest.mark.parametrize(
    ("method", "path", "family"),
    [
        # Routes the app serves that once fell into `other` (or, POST /, into `meta`).
        ("GET", "/health/live", "meta"), ("GET", "/health/ready", "meta"),
        ("POST", "/embeddings", "openai"), ("GET", "/models", "openai"),
        ("GET", "/models/all-minilm", "openai"),
        ("POST", "/v1/embed", "cohere"), ("POST", "/v2/embed", "cohere"),
        ("POST", "/embed_all", "native"), ("POST", "/tokenize", "native"),
        ("POST", "/decode", "native"), ("POST", "/embed_sparse", "native"),
        ("POST", "/api/chat", "ollama"), ("POST", "/api/generate", "ollama"),
        # "/" is two routes: TEI's (or nomic-api-rs's) POST embedding, and the GET greeting.
        ("POST", "/", "native"), ("GET", "/", "meta"), ("HEAD", "/", "meta"),
        ("POST", "/no/such/route", "other"),
    ],
)  # fmt: skip
def test_route_family_uses_the_method(method: str, path: str, family: str) -> None:
    assert metrics.route_family(path, method) == family


def test_every_app_route_has_a_family(tmp_path: Any) -> None:
    """No route the app really serves is counted as `other` (that is for unknown paths)."""
    from gateway.api.app import create_app
    from gateway.settings import Settings
    from tools.paths import REPO

    app = create_app(
        Settings.load(
            environ={
                "GATEWAY_REGISTRY": str(REPO / "registry.yaml"),
                "GATEWAY_MODELS_DIR": str(tmp_path),
            }
        )
    )
    unlabelled = []
    for route in app.routes:
        # "/v1/models/{model_id:path}" -> "/v1/models/x": a path a request could have.
        path = route.path.split("{")[0] + "x" if "{" in route.path else route.path
        for method in sorted(route.methods - {"OPTIONS"}):
            if metrics.route_family(path, method) == "other":
                unlabelled.append((method, route.path))
    assert not unlabelled


@pytest.mark.parametrize(
    ("reason", "labels"),
    [
        ("keep_alive 0", ("keep_alive_zero", None)),
        ("keep_alive expired", ("keep_alive_expired", None)),
        ("making room for nomic-embed-text", ("evicted", "make_room")),
        ("over budget after loading x", ("evicted", "over_budget")),
        ("deleted", ("deleted", None)),
        ("shutdown", ("shutdown", None)),
        ("requested", ("requested", None)),
    ],
)
def test_unload_reasons_map_to_labels(reason: str, labels: tuple[str, str | None]) -> None:
    assert metrics.unload_reason(reason) == labels


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (b"abc-123", "abc-123"),
        (b"trace:4bf92f35/00f067aa.1", "trace:4bf92f35/00f067aa.1"),
        (b"has space", None),
        (b"x" * 129, None),
        (b"new\nline", None),
        (b"", None),
    ],
)
def test_client_request_ids_are_checked(header: bytes, accepted: str | None) -> None:
    assert accepted_request_id({"headers": [(b"x-request-id", header)]}) == accepted


def log_through(formatter: logging.Formatter, message: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.observability")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("key sk-secret-1 in an exception")
        except ValueError:
            logger.error(message, *args, exc_info=True)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_the_request_id_and_never_a_key() -> None:
    context, token = begin("req-42")
    try:
        note_model("all-minilm")
        assert context.model == "all-minilm" and current_request_id() == "req-42"
        line = log_through(JsonFormatter(["sk-secret-1"]), "auth with %s", "sk-secret-1")
    finally:
        end(token)
    record = json.loads(line)
    assert record["request_id"] == "req-42" and record["level"] == "error"
    assert record["message"] == f"auth with {MASK}"
    assert "sk-secret-1" not in line and MASK in record["exception"]
    assert current_request_id() == "-"


def test_text_lines_carry_the_request_id_or_a_dash() -> None:
    outside = log_through(TextFormatter(["sk-secret-1"]), "no request here")
    assert " [-] no request here" in outside and "sk-secret-1" not in outside
    _, token = begin("req-7")
    try:
        inside = log_through(TextFormatter(), "inside")
    finally:
        end(token)
    assert " [req-7] inside" in inside


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("/api/embed", "/api/embed"),
        ("/v1/models/caf\u00e9", "/v1/models/caf\u00e9"),  # printable: as it is
        ("/x\n2026-01-01 WARNING forged", "/x\\n2026-01-01 WARNING forged"),
        ("/x\r\n", "/x\\r\\n"),
        ("/a\\nb", "/a\\\\nb"),  # a backslash is doubled: an escape cannot be faked
        ("/\x1b[31mred", "/\\x1b[31mred"),
        ("/a\u2028b", "/a\\u2028b"),  # a Unicode line separator breaks lines too
    ],
)
def test_request_text_in_log_lines_is_escaped(text: str, logged: str) -> None:
    assert loggable(text) == logged
    assert "\n" not in loggable(text) and loggable(text).isprintable()


def test_the_access_log_escapes_the_path(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    forged = "/api/embed\n2026-12-06 01:00:00,000 WARNING gateway.auth.guard [-] key 'boss' used"
    scope = {"type": "http", "method": "POST", "path": forged, "headers": []}
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        asyncio.run(RequestObserver(app, access_log=True)(scope, receive, send))
    (record,) = [r for r in caplog.records if r.name == "gateway.access"]
    line = record.getMessage()
    assert line.startswith("POST /api/embed\\n2026-12-06 01:00:00,000 WARNING")
    assert "\n" not in line and " 404 " in line


def test_an_auth_failure_line_escapes_the_path(caplog: pytest.LogCaptureFixture) -> None:
    guard = Authenticator(KeyRing.from_settings(["right"], None), failures_per_minute=10)
    request = SimpleNamespace(
        headers={"x-api-key": "wrong"},
        client=SimpleNamespace(host="192.0.2.1"),
        scope={},
        url=SimpleNamespace(path="/api/embed\r\nforged line"),
    )
    with caplog.at_level(logging.WARNING, logger="gateway.auth.guard"), pytest.raises(Unauthorized):
        asyncio.run(guard.check(request, public=False))
    assert "on /api/embed\\r\\nforged line: unknown key" in caplog.text
    assert "\nforged" not in caplog.text


def test_metrics_content_type_names_the_charset_once() -> None:
    from litestar.testing import create_test_client

    from gateway.api.observe import metrics_router

    with create_test_client(route_handlers=[metrics_router(lambda: None, public=True)]) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers.get_list("content-type") == [metrics.CONTENT_TYPE_LATEST]
    assert response.headers["content-type"].count("charset") == 1


def test_repeat_throttle_counts_what_it_held(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import logs

    clock = [100.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock[0])
    throttle = logs.RepeatThrottle("busy.", window=10)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, message, None, None)

    passed = [throttle.filter(record("busy.")) for _ in range(5)]
    assert passed == [True, False, False, False, False]
    assert throttle.filter(record("other line"))  # other messages are never held
    clock[0] += 10
    later = record("busy.")
    assert (
        throttle.filter(later) and later.getMessage() == "busy. (4 more like it in the last 10 s)"
    )
    clock[0] += 10
    alone = record("busy.")
    assert throttle.filter(alone) and alone.getMessage() == "busy."


@pytest.mark.parametrize("seconds", [0.0002, 0.0004, 0.0008])
def test_latency_buckets_resolve_sub_millisecond_requests(seconds: float) -> None:
    """A cache hit or a one-text fast-lane answer takes tenths of a millisecond: each such
    latency must fall in a bucket of its own size, not all into one 0-1 ms bucket (which left
    histogram_quantile to make up every quantile below 1 ms)."""
    for histogram in (metrics.REQUEST_SECONDS, metrics.BATCH_SECONDS):
        bounds = [b for b in histogram._upper_bounds if b >= seconds]  # type: ignore[attr-defined]
        assert bounds[0] <= 2.5 * seconds, (histogram._name, bounds[:3])  # type: ignore[attr-defined]
