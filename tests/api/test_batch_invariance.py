"""A text's vector does not depend on what it is batched with (DESIGN: agree to 1e-5).

For each served model: every distinct text of a 32-text mixed-length batch is embedded alone
first, then the batch in one request, then the same texts as 32 concurrent one-text requests that
the server's batcher is free to mix. All three must agree to 1e-5 per component.

Where the batcher cuts a batch depends on its run overhead; these servers pin it (by setting or
registry entry) so the batches cut do not depend on how busy the machine was at load.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.run_overhead import RUN_OVERHEAD_BOUNDS
from tests.support.api import ollama_embed
from tests.support.models import MINILM_FP32, NOMIC, PINNED_OVERHEAD_TOKENS
from tools.corpus import mixed_batch
from tools.gateway_server import GatewayServer
from tools.qwen3 import ENTRY as QWEN3

MAX_DIFF = 1e-5
PROBE = "The quick brown fox jumps over the lazy dog near the riverbank."
# Servers with the embedding cache off: a cached vector would make every comparison trivial.
SERVERS = {
    "all-minilm": "uncached_server",
    MINILM_FP32: "minilm_fp32_server",
    NOMIC: "nomic_server",
    QWEN3: "qwen3_server",  # a decoder pooled at its last token
}
# Where each of those servers pins the run overhead.
PINNED_BY = {"all-minilm": "setting", MINILM_FP32: "registry", NOMIC: "setting", QWEN3: "setting"}


def model_row(client: httpx.Client, model: str) -> dict[str, Any]:
    response = client.get("/admin/models")
    assert response.status_code == 200, response.text
    (entry,) = [m for m in response.json()["models"] if m["name"] == model]
    return entry


def batch_stats(client: httpx.Client, model: str) -> tuple[int, int]:
    """(inference runs, items run) so far for `model`, from the gateway's /admin/models."""
    entry = model_row(client, model)
    return entry["batches"], entry["items"]


@pytest.mark.parametrize("model", SERVERS)
def test_alone_equals_batched(request: pytest.FixtureRequest, model: str) -> None:
    gateway: GatewayServer = request.getfixturevalue(SERVERS[model])
    batch = mixed_batch(PROBE)
    distinct = list(dict.fromkeys(batch))
    assert len(batch) == 32 and len(distinct) >= 15
    with gateway.client() as client:
        assert client.get("/info").json()["settings"]["cache_bytes"] == 0, "the cache is off"
        alone = {text: ollama_embed(client, model, [text])[0] for text in distinct}
        row = model_row(client, model)
        assert (row["run_overhead_tokens"], row["run_overhead_source"]) == (
            PINNED_OVERHEAD_TOKENS,
            PINNED_BY[model],
        )
        runs_before, items_before = row["batches"], row["items"]
        together = ollama_embed(client, model, batch)
        runs, items = batch_stats(client, model)
    # The comparison means something only if texts really shared inference runs; with the
    # overhead pinned, the cut of one 32-text request is the same on a busy machine.
    assert items - items_before == len(batch) and runs - runs_before < len(batch) // 4
    with ThreadPoolExecutor(max_workers=32) as pool, gateway.client() as client:
        concurrent = list(pool.map(lambda text: ollama_embed(client, model, [text])[0], batch))

    expected = np.stack([alone[text] for text in batch])
    in_batch = np.abs(together - expected).max()
    in_flight = np.abs(np.stack(concurrent) - expected).max()
    print(f"\n{model}: max |alone - batched| {in_batch:.2e}, concurrent {in_flight:.2e}")
    assert in_batch <= MAX_DIFF, f"{model}: one request of 32: max diff {in_batch:.2e}"
    assert in_flight <= MAX_DIFF, f"{model}: 32 concurrent requests: max diff {in_flight:.2e}"
    probes = together[[0, 16, 31]]
    assert np.abs(probes - alone[PROBE]).max() <= MAX_DIFF


def test_unpinned_overhead_is_measured_and_bounded(server: GatewayServer) -> None:
    """Without a pin, /admin/models shows the overhead timed at load, within its bounds."""
    with server.client() as client:
        ollama_embed(client, "all-minilm", ["load the model"])
        row = model_row(client, "all-minilm")
    assert row["run_overhead_source"] == "measured"
    low, high = RUN_OVERHEAD_BOUNDS
    assert low <= row["run_overhead_measured"] <= high
    assert row["run_overhead_tokens"] == row["run_overhead_measured"]
