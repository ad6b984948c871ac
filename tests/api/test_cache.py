"""The embedding cache: repeated inputs skip inference and give the same vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

TEXTS = [f"cached sentence number {i}" for i in range(20)]
LONG = "word " * 400


def serve(tmp: Path, model_dir: Path, cache_bytes: str) -> GatewayServer:
    registry = write_registry(
        tmp / "registry.yaml", {"m": minilm_entry(model_dir)}, default_model="m"
    )
    return GatewayServer(registry=registry, env={"GATEWAY_CACHE_BYTES": cache_bytes})


def model_row(client: httpx.Client) -> dict:
    (row,) = [m for m in client.get("/admin/models").json()["models"] if m["name"] == "m"]
    return row


@pytest.fixture(scope="module")
def cached(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> Iterator[GatewayServer]:
    with serve(tmp_path_factory.mktemp("cache"), default_model_dir, "64MiB") as server:
        yield server


@pytest.fixture(scope="module")
def uncached(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> Iterator[GatewayServer]:
    with serve(tmp_path_factory.mktemp("nocache"), default_model_dir, "0") as server:
        yield server


def embed(client: httpx.Client, texts: list[str], **extra: object) -> np.ndarray:
    response = client.post("/api/embed", json={"model": "m", "input": texts, **extra})
    assert response.status_code == 200, response.text
    return np.array(response.json()["embeddings"])


def test_repeated_inputs_hit_the_cache_and_match(cached: GatewayServer, uncached: GatewayServer):
    with cached.client() as client, uncached.client() as plain:
        first = embed(client, TEXTS)
        items_after_first = model_row(client)["items"]
        again = embed(client, TEXTS[::-1])
        row = model_row(client)
        reference = embed(plain, TEXTS)
        plain_row = model_row(plain)
    assert row["items"] == items_after_first  # nothing ran again
    assert row["cache_hits"] == len(TEXTS) and row["cache_misses"] == len(TEXTS)
    assert row["cache_hit_rate"] == pytest.approx(0.5)
    assert np.array_equal(again, first[::-1])
    assert np.abs(first - reference).max() <= 1e-6
    assert plain_row["cache_hits"] == 0 and plain_row["cache_hit_rate"] is None  # off


def test_one_entry_serves_other_dimensions_and_the_legacy_route(cached: GatewayServer) -> None:
    with cached.client() as client:
        normalized = embed(client, ["legacy and new routes share entries"])[0]
        before = model_row(client)["items"]
        raw = client.post(
            "/api/embeddings", json={"model": "m", "prompt": "legacy and new routes share entries"}
        ).json()["embedding"]
        assert model_row(client)["items"] == before
    raw = np.array(raw)
    assert np.linalg.norm(raw) != pytest.approx(1.0)  # legacy route: not normalized
    assert np.abs(raw / np.linalg.norm(raw) - normalized).max() <= 1e-6


def test_a_cached_truncated_input_still_refuses_truncate_false(cached: GatewayServer) -> None:
    with cached.client() as client:
        embed(client, [LONG])  # cached, cut at the context length
        response = client.post("/api/embed", json={"model": "m", "input": LONG, "truncate": False})
    assert response.status_code == 400
    assert "context length" in response.json()["error"]


def test_a_request_refused_as_too_long_counts_no_lookups(cached: GatewayServer) -> None:
    """truncate: false refuses an input past the context length once its vector is computed
    (or found): the request was not answered, so its lookups do not move the hit rate."""
    with cached.client() as client:
        embed(client, ["short"])  # loaded, and "short" cached
        before = model_row(client)
        for _ in range(2):  # a miss (computed, then cached), then a hit
            body = {"model": "m", "input": ["short", "too long " * 300], "truncate": False}
            response = client.post("/api/embed", json=body)
            assert response.status_code == 400, response.text
        after = model_row(client)
    assert (after["cache_hits"], after["cache_misses"]) == (
        before["cache_hits"],
        before["cache_misses"],
    )


def test_the_cache_stays_within_its_byte_budget(tmp_path: Path, default_model_dir: Path) -> None:
    with serve(tmp_path, default_model_dir, "20KiB") as server, server.client() as client:
        embed(client, [f"text {i}" for i in range(64)])
        view = client.get("/admin/models").json()["cache"]
    assert 0 < view["used_bytes"] <= 20 * 1024
    assert view["entries"] < 64


def test_entries_over_the_same_weights_never_share_vectors(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path
) -> None:
    """Four registry entries serve one model.onnx: as shipped, cut at 16 tokens, CLS-pooled,
    and pinned to ONNX Runtime fp32. Each must compute its own vectors, whichever asked first;
    a key of the weights' digest alone served the first entry's vector to all four."""
    twins = {
        "m": {},
        "m-short": {"max_tokens": 16},
        "m-cls": {"pooling": "cls"},
        "m-exact": {"backend": "onnxruntime", "precision": "fp32"},
    }
    tmp = tmp_path_factory.mktemp("twins")
    entries = {name: minilm_entry(default_model_dir, **extra) for name, extra in twins.items()}
    text = "one sentence that every twin embeds, long enough to pass sixteen tokens " * 2

    def vectors(cache_bytes: str, order: list[str]) -> dict[str, tuple[np.ndarray, int]]:
        registry = write_registry(tmp / f"registry-{cache_bytes}.yaml", entries, default_model="m")
        env = {"GATEWAY_CACHE_BYTES": cache_bytes}
        with GatewayServer(registry=registry, env=env) as server, server.client() as client:
            found = {}
            for name in order:
                body = client.post("/api/embed", json={"model": name, "input": [text]}).json()
                found[name] = (np.array(body["embeddings"][0]), body["prompt_eval_count"])
            return found

    reference = vectors("0", list(twins))
    for order in (list(twins), list(twins)[::-1]):
        cached = vectors("64MiB", order)
        for name in twins:
            vector, tokens = cached[name]
            assert tokens == reference[name][1], name
            assert np.abs(vector - reference[name][0]).max() <= 1e-6, name
    assert reference["m-short"][1] == 16
    assert np.abs(reference["m-cls"][0] - reference["m"][0]).max() > 0.1
