"""The in-process ASGI driver the Ray replicas use: the gateway's real app answers forwarded
requests, its lifespan starts and stops, and a request stays 'connected' until answered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.api.app import create_app
from gateway.distributed.asgi import (
    AppFailed,
    ForwardedRequest,
    Lifespan,
    Message,
    Receive,
    Scope,
    Send,
    call_app,
)
from gateway.settings import Settings
from tests.support.server import REPO


def request(method: str, path: str, body: bytes = b"", query: bytes = b"") -> ForwardedRequest:
    headers = [(b"host", b"gateway"), (b"content-type", b"application/json")]
    return ForwardedRequest(method, path, query, headers, body, client=("10.1.2.3", 5000))


def test_the_gateway_app_answers_forwarded_requests(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={
            "GATEWAY_REGISTRY": str(REPO / "registry.yaml"),
            "GATEWAY_MODELS_DIR": str(tmp_path),
        }
    )

    async def scenario() -> None:
        app = create_app(settings)
        lifespan = Lifespan(app)
        await lifespan.start()
        try:
            root = await call_app(app, request("GET", "/"))
            assert (root.status, root.body) == (200, b"Ollama is running")
            tags = await call_app(app, request("GET", "/api/tags"))
            assert tags.status == 200 and "models" in json.loads(tags.body)
            assert (b"content-length", str(len(tags.body)).encode()) in tags.headers
            missing = await call_app(
                app,
                request("POST", "/api/embed", json.dumps({"model": "nope", "input": "x"}).encode()),
            )
            assert missing.status == 404 and "nope" in json.loads(missing.body)["error"]
            bad = await call_app(app, request("POST", "/v1/embeddings", b"{"))
            assert bad.status == 400 and "error" in json.loads(bad.body)
        finally:
            await lifespan.stop()

    asyncio.run(scenario())


def test_receive_reports_no_disconnect_before_the_response() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        waiting = asyncio.ensure_future(receive())
        await asyncio.sleep(0.05)
        assert not waiting.done(), "a disconnect before the answer would cancel the work"
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x", b"1")]})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"c"})
        seen.append(await waiting)

    answer = asyncio.run(call_app(app, request("POST", "/p", b"payload", b"a=1")))
    assert (answer.status, answer.headers, answer.body) == (201, [(b"x", b"1")], b"abc")
    assert seen == [
        {"type": "http.request", "body": b"payload", "more_body": False},
        {"type": "http.disconnect"},
    ]


def test_failures_are_reported() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with pytest.raises(AppFailed, match="sent no response"):
        asyncio.run(call_app(silent, request("GET", "/")))

    async def broken_start(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no registry"})

    async def start_broken() -> None:
        await Lifespan(broken_start).start()

    with pytest.raises(AppFailed, match="no registry"):
        asyncio.run(start_broken())
