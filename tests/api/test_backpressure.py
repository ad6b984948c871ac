"""Backpressure: a full queue is refused at once, in each API family's shape, with Retry-After.

The queue is held full on purpose while the refused requests arrive: one large request (accepted,
since it finds the queue empty) keeps thousands of inputs waiting, and its client hangs up
afterwards so the server drops them. Whether a burst of small requests overflows the queue by
itself would depend on how fast this machine drains it; this does not.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

LONG_TEXTS = [f"passage {i} " + "lorem ipsum dolor sit amet " * 45 for i in range(8)]
# ~60 runs of 8 long texts: the queue stays full far longer than tokenizing a burst takes.
HOLDING_TEXTS = [f"held {i} " + "lorem ipsum dolor sit amet " * 45 for i in range(500)]


@pytest.fixture(scope="module")
def small_queue(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> Iterator[GatewayServer]:
    directory = tmp_path_factory.mktemp("queue")
    registry = write_registry(
        directory / "registry.yaml", {"m": minilm_entry(default_model_dir)}, default_model="m"
    )
    env = {"GATEWAY_MAX_QUEUE": "8", "GATEWAY_MAX_BATCH_SIZE": "8", "GATEWAY_CACHE_BYTES": "0"}
    with GatewayServer(registry=registry, env=env) as server:
        yield server


def model_row(client: httpx.Client) -> dict[str, Any]:
    (row,) = client.get("/admin/models").json()["models"]
    return row


def wait_for(client: httpx.Client, done: Callable[[dict[str, Any]], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not done(row := model_row(client)):
        assert time.monotonic() < deadline, f"{what}: {row}"
        time.sleep(0.05)


@contextmanager
def queue_held_full(server: GatewayServer) -> Iterator[None]:
    """While inside, the model's queue holds inputs; on leaving, the holder hangs up."""
    body = json.dumps({"model": "m", "input": HOLDING_TEXTS}).encode()
    head = (
        f"POST /api/embed HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with server.client() as client:
        with socket.create_connection(("127.0.0.1", server.port)) as holder:
            holder.sendall(head + body)
            wait_for(client, lambda row: row.get("queued", 0) > 0, "the holding request is queued")
            yield
        wait_for(
            client,
            lambda row: row.get("queued", 0) == 0 and row.get("in_flight", 0) == 0,
            "queue drained",
        )


def burst(server: GatewayServer, path: str, body: dict, count: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            return await asyncio.gather(*(client.post(path, json=body) for _ in range(count)))

    return asyncio.run(run())


def test_ollama_routes_answer_503_when_the_queue_is_full(small_queue: GatewayServer) -> None:
    with queue_held_full(small_queue):
        responses = burst(small_queue, "/api/embed", {"model": "m", "input": LONG_TEXTS}, 8)
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["error"].startswith("server busy, please try again")
        assert int(response.headers["retry-after"]) >= 1


def test_openai_routes_answer_429_when_the_queue_is_full(small_queue: GatewayServer) -> None:
    with queue_held_full(small_queue):
        responses = burst(small_queue, "/v1/embeddings", {"model": "m", "input": LONG_TEXTS}, 8)
    for response in responses:
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "server_busy"
        assert "server busy" in error["message"]
        assert int(response.headers["retry-after"]) >= 1


def test_a_request_larger_than_the_queue_runs_when_the_queue_is_empty(
    small_queue: GatewayServer,
) -> None:
    """The limit refuses waiting behind others, not size: 16 inputs into an 8-input queue."""
    with small_queue.client() as client:
        wait_for(client, lambda row: row.get("queued", 0) == 0, "queue empty")
        response = client.post("/api/embed", json={"model": "m", "input": LONG_TEXTS * 2})
    assert response.status_code == 200, response.text
    embeddings = response.json()["embeddings"]
    assert len(embeddings) == 16 and embeddings[:8] == embeddings[8:]


def test_the_server_is_healthy_after_refusing(small_queue: GatewayServer) -> None:
    with small_queue.client() as client:
        rejected_before = model_row(client)["rejected"]
    with queue_held_full(small_queue):
        refused = burst(small_queue, "/api/embed", {"model": "m", "input": LONG_TEXTS}, 8)
    assert {r.status_code for r in refused} == {503}
    with small_queue.client() as client:
        assert client.post("/api/embed", json={"model": "m", "input": "ok"}).status_code == 200
        row = model_row(client)
    assert row["queued"] == 0 and row["in_flight"] == 0
    assert row["rejected"] == rejected_before + 8
