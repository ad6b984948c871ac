"""A body the fast lane takes is kept where Litestar keeps a body it read, so an answer written
for that request outside the lane (the drain's 503 at shutdown, gateway/api/draining.py) picks
its family from the body, as it does for a request a route was serving."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from litestar import Request

from gateway.api.draining import ShuttingDown
from gateway.api.errors import render_error
from gateway.api.fast_lane import FastLane, _Replay
from gateway.auth.guard import Authenticator
from gateway.services import EmbeddingService
from gateway.settings import Settings
from tests.support.asgi import post_scope


@pytest.mark.parametrize(
    ("body", "keys"),
    [
        (b'{"input": "hi"}', {"error"}),  # nomic-api-rs's body: Ollama's shape
        (b'{"inputs": "hi"}', {"error", "error_type"}),  # TEI's
    ],
    ids=["nomic-api-rs", "tei"],
)
def test_a_taken_body_decides_the_family_of_an_answer_written_outside_the_lane(
    body: bytes, keys: set[str]
) -> None:
    lane = FastLane(
        app=cast(Any, None),  # never reached: the lane answers these bodies itself
        embedding=cast(EmbeddingService, None),  # _take does not embed
        auth=Authenticator.from_settings(Settings.load(environ={})),
        max_body_bytes=1 << 20,
    )
    scope = post_scope("/embed", body)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    taken = asyncio.run(lane._take(lane.routes["/embed"], cast(Any, scope), receive))
    assert not isinstance(taken, _Replay), "the lane hands this body to Litestar"
    refusal = render_error(Request(cast(Any, scope)), ShuttingDown("shutting down"))
    assert refusal.status_code == 503
    assert set(json.loads(json.dumps(refusal.content))) == keys
