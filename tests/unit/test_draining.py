"""The drain's 503 at the end of the shutdown grace (gateway/api/draining.py), without a server:
a request still working is answered once in its family's shape, one that began its answer is
left to finish, a cancellation that is not the drain's still cancels, and a client that leaves
as the drain strikes gets one answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.api.disconnect import WATCH_AFTER_SECONDS, ClientClosedRequest, unless_disconnected
from gateway.api.draining import Drain
from tests.support.asgi import post_scope

Message = dict[str, Any]
BODY = b'{"model": "all-minilm", "input": "hi"}'


async def _receive() -> Message:
    await asyncio.Event().wait()  # the body was read; nothing more comes
    raise AssertionError("unreachable")


async def _serve(
    drain: Drain, app: Any, act: Any, receive: Any = _receive, after: float = 0.01
) -> tuple[list[Message], BaseException | None]:
    """Run one request through the drain, call `act(task)` `after` seconds into it (the app is
    working), and return what was sent and how the request's task ended."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.create_task(drain.wrap(app)(post_scope("/api/embed", BODY), receive, send))
    await asyncio.sleep(after)
    act(task)
    try:
        await task
    except BaseException as exc:  # the outcome is what the test checks
        return sent, exc
    return sent, None


async def _working(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(60)


def test_a_request_still_working_is_answered_503_once() -> None:
    drain = Drain()

    def act(task: asyncio.Task[None]) -> None:
        assert drain.in_flight == 1
        assert drain.answer_in_flight() == 1
        assert drain.answer_in_flight() == 0  # already being answered: not cancelled twice

    sent, ended = asyncio.run(_serve(drain, _working, act))
    assert ended is None
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 503
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert set(body) == {"error"} and "shutting down" in body["error"]
    assert drain.in_flight == 0


def test_a_request_that_began_its_answer_is_left_to_finish() -> None:
    drain = Drain()

    async def answering(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"done"})

    sent, ended = asyncio.run(_serve(drain, answering, lambda _: drain.answer_in_flight()))
    assert ended is None
    assert [m.get("status", m.get("body")) for m in sent] == [200, b"done"]


@pytest.mark.parametrize("drain_too", [False, True], ids=["server-only", "server-and-drain"])
def test_a_cancel_that_is_not_only_the_drains_still_cancels(drain_too: bool) -> None:
    drain = Drain()

    def act(task: asyncio.Task[None]) -> None:
        task.cancel()  # the server's own cancel
        if drain_too:
            drain.answer_in_flight()

    sent, ended = asyncio.run(_serve(drain, _working, act))
    assert isinstance(ended, asyncio.CancelledError)
    assert sent == []
    assert drain.in_flight == 0


@pytest.mark.parametrize("client_leaves", [False, True], ids=["drain", "drain-and-disconnect"])
def test_a_watched_request_gets_one_answer(client_leaves: bool) -> None:
    """The handler's own disconnect watcher (gateway/api/disconnect.py) cancels the same task:
    with the drain alone the answer is the 503; when the client leaves in the same loop turn
    the handler answers 499 (nobody reads it) and the drain adds nothing."""
    drain = Drain()
    left = asyncio.Event()

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        try:
            await unless_disconnected(receive, asyncio.sleep(60))
        except ClientClosedRequest:
            await send({"type": "http.response.start", "status": 499, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    def act(task: asyncio.Task[None]) -> None:
        if client_leaves:
            left.set()
        drain.answer_in_flight()

    after = WATCH_AFTER_SECONDS * 2  # the watcher is armed
    sent, ended = asyncio.run(_serve(drain, watched, act, receive, after))
    assert ended is None
    starts = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert starts == ([499] if client_leaves else [503])
    assert drain.in_flight == 0
