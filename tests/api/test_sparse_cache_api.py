"""TEI's /embed_sparse through the embedding cache, on the real server with the tiny random SPLADE
of tools/splade.py: a repeated text is a hit in /metrics and /admin/models, runs nothing, and
answers the same bytes; an entry holds its non-zero weights only (8 bytes each, as the byte
budget counts them); a cached text too long for truncate: false is still refused, and not
counted. (The key's other fields are tests/unit/test_cache_keys.py's.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.cache import ENTRY_OVERHEAD_BYTES
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry
from tools.splade import LONG, TEXTS, splade_dir, splade_entry

SPARSE = "tiny-splade"


@pytest.fixture(scope="module")
def server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    model_dir = splade_dir(default_model_dir / "tokenizer.json")
    registry = write_registry(
        tmp_path_factory.mktemp("sparse-cache") / "registry.yaml",
        {
            "all-minilm": minilm_entry(default_model_dir),
            SPARSE: splade_entry(model_dir),
        },
    )
    with GatewayServer(registry=registry, env={"GATEWAY_CACHE_BYTES": "64MiB"}) as running:
        yield running


@pytest.fixture
def client(server: GatewayServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def counters(client: httpx.Client, model: str) -> tuple[float, float, float]:
    """(cache hits, cache misses, inputs run) of `model` in /metrics."""
    found = {"hit": 0.0, "miss": 0.0, "run": 0.0}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name == "gateway_cache_lookups_total":
                found[sample.labels["result"]] = sample.value
            elif sample.name == "gateway_inputs_total":
                found["run"] = sample.value
    return found["hit"], found["miss"], found["run"]


def post(client: httpx.Client, model: str, inputs: Any, **extra: object) -> httpx.Response:
    response = client.post("/embed_sparse", json={"inputs": inputs, "model": model, **extra})
    assert response.status_code == 200, response.text
    return response


def moved(after: tuple[float, ...], before: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(a - b for a, b in zip(after, before, strict=True))


def test_a_repeated_request_is_a_cache_hit_with_the_same_answer(client: httpx.Client) -> None:
    texts = [f"{text} (repeated)" for text in TEXTS]  # new to this server's cache
    post(client, SPARSE, "load the model")
    before = counters(client, SPARSE)
    first = post(client, SPARSE, texts)
    after_first = counters(client, SPARSE)
    assert moved(after_first, before) == (0, len(texts), len(texts))
    second = post(client, SPARSE, texts)
    assert moved(counters(client, SPARSE), after_first) == (len(texts), 0, 0)  # nothing ran
    assert second.content == first.content
    assert second.headers["x-truncated-inputs"] == first.headers["x-truncated-inputs"] == str(LONG)
    # A request of a cached text and a new one: one hit, one miss; the same row for the first.
    mixed = post(client, SPARSE, [texts[1], "never seen before (repeated)"]).json()
    assert mixed[0] == first.json()[1]
    assert moved(counters(client, SPARSE), after_first) == (len(texts) + 1, 1, 1)
    (row,) = [m for m in client.get("/admin/models").json()["models"] if m["name"] == SPARSE]
    assert row["cache_hits"] >= len(texts) + 1


def test_an_entry_is_its_non_zero_weights_in_the_byte_budget(client: httpx.Client) -> None:
    texts = ["bytes of one cached sparse vector", "and of another, a little longer than it"]
    post(client, SPARSE, "load the model")
    before = client.get("/admin/models").json()["cache"]
    rows = post(client, SPARSE, texts).json()
    after = client.get("/admin/models").json()["cache"]
    assert after["entries"] - before["entries"] == len(texts)
    # int32 indices and float32 weights: 8 bytes a weight (a dense row would be 30522 x 4).
    expected = sum(8 * len(row) + ENTRY_OVERHEAD_BYTES for row in rows)
    assert after["used_bytes"] - before["used_bytes"] == expected


def test_a_cached_text_too_long_for_truncate_false_is_refused_uncounted(
    client: httpx.Client,
) -> None:
    post(client, SPARSE, [TEXTS[0], TEXTS[LONG]])  # both cached, the long one cut
    before = counters(client, SPARSE)
    refused = client.post(
        "/embed_sparse",
        json={"inputs": [TEXTS[0], TEXTS[LONG]], "model": SPARSE, "truncate": False},
    )
    assert refused.status_code == 422, refused.text
    assert "inputs[1] has 162 tokens" in refused.json()["error"]
    assert counters(client, SPARSE) == before
    post(client, SPARSE, [TEXTS[0], TEXTS[LONG]])  # truncating: both served from the cache
    assert moved(counters(client, SPARSE), before) == (2, 0, 0)
