"""Backpressure: a full queue is refused at once, in each API family's shape, with Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.models import minilm_entry, write_registry
from tests.support.server import GatewayServer

LONG_TEXTS = [f"passage {i} " + "lorem ipsum dolor sit amet " * 45 for i in range(8)]


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


def burst(server: GatewayServer, path: str, body: dict, count: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            return await asyncio.gather(*(client.post(path, json=body) for _ in range(count)))

    return asyncio.run(run())


def test_ollama_routes_answer_503_when_the_queue_is_full(small_queue: GatewayServer) -> None:
    responses = burst(small_queue, "/api/embed", {"model": "m", "input": LONG_TEXTS}, 8)
    refused = [r for r in responses if r.status_code != 200]
    assert refused, "eight concurrent 8-input requests should overflow an 8-input queue"
    assert len(refused) < len(responses)
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"].startswith("server busy, please try again")
        assert int(response.headers["retry-after"]) >= 1
    served = [r.json()["embeddings"] for r in responses if r.status_code == 200]
    assert all(embeddings == served[0] for embeddings in served)


def test_openai_routes_answer_429_when_the_queue_is_full(small_queue: GatewayServer) -> None:
    responses = burst(small_queue, "/v1/embeddings", {"model": "m", "input": LONG_TEXTS}, 8)
    refused = [r for r in responses if r.status_code != 200]
    assert refused and len(refused) < len(responses)
    for response in refused:
        assert response.status_code == 429
        error = response.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "server_busy"
        assert "server busy" in error["message"]
        assert int(response.headers["retry-after"]) >= 1


def test_the_server_is_healthy_after_refusing(small_queue: GatewayServer) -> None:
    burst(small_queue, "/api/embed", {"model": "m", "input": LONG_TEXTS}, 8)
    with small_queue.client() as client:
        assert client.post("/api/embed", json={"model": "m", "input": "ok"}).status_code == 200
        (row,) = client.get("/admin/models").json()["models"]
    assert row["queued"] == 0 and row["in_flight"] == 0
    assert row["rejected"] > 0
