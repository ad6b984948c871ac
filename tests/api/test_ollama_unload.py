"""Ollama's unload request through the real server: /api/generate or /api/chat with nothing to
run and `keep_alive: 0` (what `ollama stop` and UIs that free memory send) unloads the model
and answers `done_reason: "unload"`; anything else there is still refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import ollama
import pytest

from tests.support.api import assert_ollama_error
from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"


@pytest.fixture(scope="module")
def client(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A server of its own: these tests unload the model other modules use."""
    registry = bundled_registry_in(tmp_path_factory.mktemp("unload"))
    with GatewayServer(registry=registry) as running, running.client() as client:
        yield client


def loaded(client: httpx.Client) -> list[str]:
    return [row["name"] for row in client.get("/api/ps").json()["models"]]


def load(client: httpx.Client) -> None:
    client.post("/api/embed", json={"model": MODEL, "input": ""}).raise_for_status()
    assert loaded(client) == [MODEL + ":latest"]


def test_generate_unloads(client: httpx.Client) -> None:
    load(client)
    answer = client.post("/api/generate", json={"model": MODEL, "keep_alive": 0})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"model", "created_at", "response", "done", "done_reason"}
    assert body["model"] == MODEL and body["response"] == "" and body["done"] is True
    assert body["done_reason"] == "unload"
    datetime.fromisoformat(body["created_at"])
    assert loaded(client) == []
    # Not loaded: the same answer, nothing changes (as Ollama).
    again = client.post("/api/generate", json={"model": MODEL, "prompt": "", "keep_alive": "0s"})
    assert again.status_code == 200 and again.json()["done_reason"] == "unload"


def test_chat_unloads(client: httpx.Client) -> None:
    load(client)
    answer = client.post("/api/chat", json={"model": MODEL, "messages": [], "keep_alive": 0})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["message"] == {"role": "assistant", "content": ""}
    assert body["done_reason"] == "unload"
    assert loaded(client) == []


def test_a_busy_model_unloads_when_its_requests_end(client: httpx.Client) -> None:
    load(client)
    texts = [f"text number {i} " + "word " * 200 for i in range(256)]
    with ThreadPoolExecutor(1) as pool:
        embedding = pool.submit(
            client.post, "/api/embed", json={"model": MODEL, "input": texts}, timeout=120
        )
        deadline = time.monotonic() + 30
        while in_flight(client) == 0 and not embedding.done():
            assert time.monotonic() < deadline, "the long request never started"
            time.sleep(0.005)
        assert not embedding.done(), "the request ended before the unload was asked for"
        unload = client.post("/api/generate", json={"model": MODEL, "keep_alive": 0})
        assert unload.status_code == 200 and loaded(client) == [MODEL + ":latest"]
        assert embedding.result().status_code == 200, "the request in flight is answered"
    assert loaded(client) == []


def in_flight(client: httpx.Client) -> int:
    rows = client.get("/admin/models").json()["models"]
    return sum(row.get("in_flight") or 0 for row in rows)


def test_ollama_client_unloads(client: httpx.Client) -> None:
    load(client)
    reply = ollama.Client(host=str(client.base_url)).generate(model=MODEL, keep_alive=0)
    assert reply.done_reason == "unload"
    assert loaded(client) == []


def test_anything_else_is_refused(client: httpx.Client) -> None:
    for path, body, capability in (
        ("/api/generate", {"prompt": "hi", "keep_alive": 0}, "generate"),
        ("/api/generate", {"keep_alive": "5m"}, "generate"),
        ("/api/generate", {}, "generate"),
        ("/api/chat", {"messages": [{"role": "user", "content": "hi"}], "keep_alive": 0}, "chat"),
    ):
        answer = client.post(path, json={"model": MODEL, **body})
        assert_ollama_error(answer, 400, f'"{MODEL}" does not support {capability}')
    assert_ollama_error(client.post("/api/generate", json={"keep_alive": 0}), 400, "model")
    unknown = client.post("/api/generate", json={"model": "llama3", "keep_alive": 0})
    assert_ollama_error(unknown, 404, "llama3")
    bad = client.post("/api/generate", json={"model": MODEL, "keep_alive": "soon"})
    assert_ollama_error(bad, 400, 'invalid duration "soon"')
