"""A client that disconnects has its queued work dropped.

The client leaves at a moment the test picks (the server reports the request's inputs queued),
not after a fixed client timeout: how far inference got in a given time depends on the machine,
what the server does once the client has gone does not.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

# Far more work than can run between the hang-up and the server noticing it (~0.05 s): 250 runs
# of 8 long texts.
TEXTS = [
    f"passage {i}: " + "the quick brown fox jumps over the lazy dog " * 20 for i in range(2000)
]


def model_row(client: httpx.Client) -> dict[str, Any]:
    (row,) = client.get("/admin/models").json()["models"]
    return row


def poll(client: httpx.Client, done: Any, what: str, within: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while not done(row := model_row(client)):
        assert time.monotonic() < deadline, f"{what} within {within}s: {row}"
        time.sleep(0.05)
    return row


def test_queued_inputs_of_a_departed_client_are_dropped(
    tmp_path: Path, default_model_dir: Path
) -> None:
    registry = write_registry(
        tmp_path / "registry.yaml", {"m": minilm_entry(default_model_dir)}, default_model="m"
    )
    env = {"GATEWAY_MAX_BATCH_SIZE": "8", "GATEWAY_CACHE_BYTES": "0"}
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        assert client.post("/api/embed", json={"model": "m", "input": "warm up"}).status_code == 200
        body = json.dumps({"model": "m", "input": TEXTS}).encode()
        head = (
            f"POST /api/embed HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as departing:
            departing.sendall(head + body)
            at_hang_up = poll(client, lambda row: row["queued"] > 0, "the inputs were queued")
        # The socket is closed: the server must notice and drop what is still queued.
        after = poll(
            client, lambda row: row["queued"] == 0 and row["in_flight"] == 0, "queue emptied"
        )
        ran = after["items"] - 1  # minus the warm-up
        print(f"{at_hang_up['queued']} queued at hang-up; {ran} of {len(TEXTS)} inputs ran")
        # Noticing the hang-up takes milliseconds; what was queued then takes seconds to run.
        dropped = len(TEXTS) - ran
        assert dropped >= at_hang_up["queued"] // 2, f"only {dropped} inputs were dropped"
        ok = client.post("/api/embed", json={"model": "m", "input": "still serving"})
        assert ok.status_code == 200
