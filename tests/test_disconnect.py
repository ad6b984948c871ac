"""A client that disconnects has its queued work dropped."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.models import minilm_entry, write_registry
from tests.support.server import GatewayServer

TEXTS = [f"passage {i}: " + "the quick brown fox jumps over the lazy dog " * 20 for i in range(600)]


def test_queued_inputs_of_a_departed_client_are_dropped(
    tmp_path: Path, default_model_dir: Path
) -> None:
    registry = write_registry(
        tmp_path / "registry.yaml", {"m": minilm_entry(default_model_dir)}, default_model="m"
    )
    env = {"GATEWAY_MAX_BATCH_SIZE": "8", "GATEWAY_CACHE_BYTES": "0"}
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        assert client.post("/api/embed", json={"model": "m", "input": "warm up"}).status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            client.post("/api/embed", json={"model": "m", "input": TEXTS}, timeout=1.0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (row,) = client.get("/admin/models").json()["models"]
            if row["queued"] == 0 and row["in_flight"] == 0:
                break
            time.sleep(0.1)
        assert row["queued"] == 0 and row["in_flight"] == 0
        ran = row["items"] - 1  # minus the warm-up
        assert ran < len(TEXTS) / 2, f"{ran} of {len(TEXTS)} inputs ran after the client left"
        ok = client.post("/api/embed", json={"model": "m", "input": "still serving"})
        assert ok.status_code == 200
