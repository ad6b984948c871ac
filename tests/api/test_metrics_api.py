"""/metrics after a mixed load through the real server, parsed with prometheus_client's parser.

Every family in docs/metrics.md must be present, and the counts must equal what was sent: the
requests per route, model and status; cache hits and misses; inputs run; loads, unloads and an
eviction (two registry names on one model file, at most one loaded at a time); image fetches.
The same server writes JSON logs: every line of a request carries its X-Request-ID, and no line
carries the API key or an input text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.image_server import ImageServer
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry
from tools.vision import encode, photo_like

KEY = "metrics-test-key-7f3a9c"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET_TEXT = "the quick zebra 0x5EC2E7 is an input text"
FAMILIES = [
    "gateway_requests",
    "gateway_request_duration_seconds",
    "gateway_queue_wait_seconds",
    "gateway_queue_depth",
    "gateway_model_in_flight",
    "gateway_batch_size",
    "gateway_batch_tokens",
    "gateway_batch_duration_seconds",
    "gateway_inputs",
    "gateway_tokens",
    "gateway_cache_lookups",
    "gateway_model_loads",
    "gateway_model_load_duration_seconds",
    "gateway_model_unloads",
    "gateway_model_evictions",
    "gateway_model_memory_bytes",
    "gateway_memory_budget_bytes",
    "gateway_image_fetches",
]
RERANK_DOCS = ["a cat sat", "stock prices fell", "the dog barked"]
BROKEN_ID = "load-test-broken-model"


@dataclass
class Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: set[str]

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def matching(self, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
        wanted = set(labels.items())
        return {
            key: value
            for (sample, key), value in self.samples.items()
            if sample == name and wanted <= key
        }


def scrape(client: httpx.Client) -> Scrape:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    families = set()
    for family in text_string_to_metric_families(response.text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, families)


@dataclass
class Load:
    server: GatewayServer
    sent: Counter[tuple[str, str, str]]  # (route, model, status) -> requests
    first_id: str
    scrape: Scrape


@pytest.fixture(scope="module")
def load(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Load]:
    folder = tmp_path_factory.mktemp("metrics")
    broken = folder / "broken-model"  # a model file no runtime can read: every load fails
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an ONNX graph")
    (broken / "tokenizer.json").write_bytes((default_model_dir / "tokenizer.json").read_bytes())
    registry = write_registry(
        folder / "registry.yaml",
        {
            "minilm-a": minilm_entry(default_model_dir),
            "minilm-b": minilm_entry(default_model_dir),
            "broken": minilm_entry(broken),
        },
        default_model="minilm-a",
    )
    env = {
        "GATEWAY_API_KEYS": KEY,
        "GATEWAY_MAX_LOADED_MODELS": "1",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_ACCESS_LOG": "true",
        "GATEWAY_IMAGE_ALLOW_HOSTS": "127.0.0.1",
    }
    sent: Counter[tuple[str, str, str]] = Counter()
    with (
        GatewayServer(registry=registry, env=env) as server,
        ImageServer(
            encode(photo_like(1, 64, 48), "PNG"), encode(photo_like(2, 80, 60), "JPEG")
        ) as images,
        server.client() as client,
    ):

        def call(route: str, model: str, method: str, path: str, **kwargs: object) -> None:
            headers = kwargs.pop("headers", AUTH)
            response = client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            sent[(route, model, str(response.status_code))] += 1

        # Requests before the load (the start-up probes of GET /, this scrape) are counted too.
        for key, value in scrape(client).matching("gateway_requests_total").items():
            labels = dict(key)
            sent[(labels["route"], labels["model"], labels["status"])] += int(value)
        sent[("meta", "", "200")] += 1  # the scrape just made
        first_id = "load-test-first-request"
        # 1. five Ollama embeds on minilm-a: 15 lookups, 11 distinct texts ("shared" repeats).
        for i in range(5):
            inputs = [f"text {i} one", f"text {i} two", "shared"]
            headers = {**AUTH, "X-Request-ID": first_id} if i == 0 else AUTH
            call("ollama", "minilm-a", "POST", "/api/embed",
                 json={"model": "minilm-a", "input": inputs}, headers=headers)  # fmt: skip
        # 2. three OpenAI embeds on minilm-b: loading it evicts minilm-a (one model at a time).
        for i in range(3):
            call("openai", "minilm-b", "POST", "/v1/embeddings",
                 json={"model": "minilm-b", "input": f"openai {i}"})  # fmt: skip
        # 3. keep_alive 0 unloads minilm-b when the request ends.
        call("ollama", "minilm-b", "POST", "/api/embed",
             json={"model": "minilm-b", "input": SECRET_TEXT, "keep_alive": 0})  # fmt: skip
        # 3b. a model whose load fails (nothing is loaded now, so nothing is evicted for it).
        call("ollama", "broken", "POST", "/api/embed", json={"model": "broken", "input": "x"},
             headers={**AUTH, "X-Request-ID": BROKEN_ID})  # fmt: skip
        # 4. two reranks on minilm-a (loads it again; query and documents skip the cache).
        for _ in range(2):
            call("rerank", "minilm-a", "POST", "/v1/rerank",
                 json={"model": "minilm-a", "query": "pets", "documents": RERANK_DOCS})  # fmt: skip
        # 5. errors: an unknown model, a bad dimensions value, a missing key.
        call("ollama", "", "POST", "/api/embed", json={"model": "nope", "input": "x"})
        call("ollama", "minilm-a", "POST", "/api/embed",
             json={"model": "minilm-a", "input": "x", "dimensions": 12.5})  # fmt: skip
        call("ollama", "", "POST", "/api/embed", json={"model": "minilm-a", "input": "x"},
             headers={})  # fmt: skip
        # 6. image fetches: one served, one refused (a private address, never contacted).
        call("native", "", "POST", "/img/stats", json={"content": images.url("/img.png")})
        call("native", "", "POST", "/img/stats", json={"content": "http://10.1.2.3/x.png"})
        # 7. lifecycle and meta routes.
        call("lifecycle", "", "GET", "/api/ps")
        call("meta", "", "GET", "/health")
        call("meta", "", "GET", "/health/live")
        call("meta", "", "GET", "/health/ready")
        # 8. the other API families (an unknown model or an empty body: no inference runs).
        call("openai", "", "POST", "/embeddings", json={"model": "nope", "input": "x"})
        call("cohere", "", "POST", "/v2/embed",
             json={"model": "nope", "texts": ["x"], "input_type": "search_document",
                   "embedding_types": ["float"]})  # fmt: skip
        call("native", "", "POST", "/", json={})
        call("other", "", "GET", "/no/such/route")
        yield Load(server, sent, first_id, scrape(client))


def test_every_family_is_present(load: Load) -> None:
    missing = [name for name in FAMILIES if name not in load.scrape.families]
    assert not missing, f"families missing from /metrics: {missing}"


def test_request_counts_equal_requests_sent(load: Load) -> None:
    expected = dict(load.sent)
    assert expected[("ollama", "minilm-a", "200")] == 5
    assert expected[("ollama", "", "404")] == 1
    assert expected[("ollama", "", "401")] == 1
    assert expected[("native", "", "400")] == 2  # the refused image URL, POST / with {}
    assert expected[("ollama", "broken", "500")] == 1  # its load failed
    counted = {
        (dict(key)["route"], dict(key)["model"], dict(key)["status"]): value
        for key, value in load.scrape.matching("gateway_requests_total").items()
    }
    assert counted == expected
    for (route, model), count in _by_route_model(expected).items():
        histogram = load.scrape.value("gateway_request_duration_seconds_count", route=route,
                                      model=model)  # fmt: skip
        assert histogram == count, (route, model)


def _by_route_model(sent: dict[tuple[str, str, str], int]) -> Counter[tuple[str, str]]:
    totals: Counter[tuple[str, str]] = Counter()
    for (route, model, _), count in sent.items():
        totals[(route, model)] += count
    return totals


def test_cache_inputs_and_tokens(load: Load) -> None:
    s = load.scrape
    assert s.value("gateway_cache_lookups_total", model="minilm-a", result="hit") == 4
    assert s.value("gateway_cache_lookups_total", model="minilm-a", result="miss") == 11
    assert s.value("gateway_cache_lookups_total", model="minilm-b", result="miss") == 4
    assert s.value("gateway_cache_lookups_total", model="minilm-b", result="hit") == 0
    # Inputs run = cache misses, plus each rerank's query and documents (which skip the cache).
    reranked = 2 * (1 + len(RERANK_DOCS))
    assert s.value("gateway_inputs_total", model="minilm-a") == 11 + reranked
    assert s.value("gateway_inputs_total", model="minilm-b") == 4
    for model in ("minilm-a", "minilm-b"):
        inputs = s.value("gateway_inputs_total", model=model)
        assert s.value("gateway_batch_size_sum", model=model) == inputs
        assert s.value("gateway_queue_wait_seconds_count", model=model) == inputs
        batches = s.value("gateway_batch_size_count", model=model)
        assert 1 <= batches <= inputs
        assert s.value("gateway_batch_duration_seconds_count", model=model) == batches
        real = s.value("gateway_batch_tokens_sum", model=model, kind="real")
        padded = s.value("gateway_batch_tokens_sum", model=model, kind="padded")
        assert real == s.value("gateway_tokens_total", model=model)
        assert inputs <= real <= padded  # at least [CLS] and [SEP] per input
        assert s.value("gateway_queue_depth", model=model) == 0
        assert s.value("gateway_model_in_flight", model=model) == 0
        assert s.value("gateway_queue_wait_seconds_sum", model=model) >= 0


def test_loads_unloads_evictions_and_memory(load: Load) -> None:
    s = load.scrape
    assert s.value("gateway_model_loads_total", model="minilm-a", outcome="success") == 2
    assert s.value("gateway_model_loads_total", model="minilm-b", outcome="success") == 1
    assert s.value("gateway_model_load_duration_seconds_count", model="minilm-a") == 2
    assert s.value("gateway_model_unloads_total", model="minilm-a", reason="evicted") == 1
    assert s.value("gateway_model_evictions_total", model="minilm-a", reason="make_room") == 1
    assert s.value("gateway_model_unloads_total", model="minilm-b", reason="keep_alive_zero") == 1
    assert not s.matching("gateway_model_evictions_total", model="minilm-b")
    assert s.value("gateway_model_loads_total", model="broken", outcome="failure") == 1
    assert not s.matching("gateway_model_loads_total", model="broken", outcome="success")
    assert not s.matching("gateway_model_load_duration_seconds_count", model="broken")
    assert not s.matching("gateway_model_memory_bytes", model="broken")
    # minilm-a is loaded (int8 MiniLM: tens of MiB measured), minilm-b is not.
    assert s.value("gateway_model_memory_bytes", model="minilm-a", device="ram") > 10 * 2**20
    assert s.value("gateway_model_memory_bytes", model="minilm-a", device="ram") < 2**30
    assert s.value("gateway_model_memory_bytes", model="minilm-b", device="ram") == 0
    assert s.value("gateway_memory_budget_bytes", device="ram") > 2**20


def test_image_fetches_by_outcome(load: Load) -> None:
    s = load.scrape
    assert s.value("gateway_image_fetches_total", outcome="ok") == 1
    assert s.value("gateway_image_fetches_total", outcome="refused") == 1


def test_metrics_need_the_key(load: Load) -> None:
    assert httpx.get(load.server.url + "/metrics").status_code == 401


def test_request_ids_are_echoed_and_checked(load: Load) -> None:
    with load.server.client() as client:
        given = client.get("/health", headers={"X-Request-ID": "abc-123.x"})
        assert given.headers["x-request-id"] == "abc-123.x"
        made = client.get("/health")
        assert len(made.headers["x-request-id"]) == 32
        odd = client.get("/health", headers={"X-Request-ID": "has spaces; and=more"})
        assert odd.headers["x-request-id"] != "has spaces; and=more"
        missing = client.get("/no/such/route")
        assert missing.status_code == 404 and missing.headers["x-request-id"]


def test_logs_are_json_with_request_ids_and_no_secrets(load: Load) -> None:
    lines = [line for line in load.server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    first = [r for r in records if r["request_id"] == load.first_id]
    messages = [r["message"] for r in first]
    assert any(m.startswith("loaded minilm-a") for m in messages), messages
    assert any(m.startswith("POST /api/embed 200") for m in messages), messages
    # The runtime's warning about the failed load, written on the device's worker thread, is
    # the request's line too (it once carried "-": the thread ran outside the request).
    broken = [r["message"] for r in records if r["request_id"] == BROKEN_ID]
    assert any(m.startswith("cannot load ") for m in broken), broken
    assert any(m.startswith("POST /api/embed 500") for m in broken), broken
    access = [r for r in records if r["logger"] == "gateway.access"]
    assert len(access) >= sum(load.sent.values())
    assert all(r["request_id"] != "-" for r in access)
    text = load.server.log()
    assert KEY not in text
    assert SECRET_TEXT not in text and "text 0 one" not in text


def test_public_metrics_in_multiprocess_mode(default_model_dir: Path, tmp_path: Path) -> None:
    """GATEWAY_METRICS_PUBLIC opens /metrics only; PROMETHEUS_MULTIPROC_DIR keeps values in
    files there (what several worker processes would share), and the sums still come out."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    registry = write_registry(
        tmp_path / "registry.yaml", {"minilm-a": minilm_entry(default_model_dir)}
    )
    env = {
        "GATEWAY_API_KEYS": KEY,
        "GATEWAY_METRICS_PUBLIC": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        for i in range(3):
            body = {"model": "minilm-a", "input": [f"multi {i}", "same"]}
            assert client.post("/api/embed", json=body, headers=AUTH).status_code == 200
        assert (
            client.post("/api/embed", json={"model": "minilm-a", "input": "x"}).status_code == 401
        )
        response = client.get("/metrics")  # no key
        assert response.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
    files = list(shared.iterdir())
    assert files and all(p.suffix == ".db" for p in files)
    requests = {
        (s.labels["route"], s.labels["model"], s.labels["status"]): s.value
        for s in families["gateway_requests"].samples
        if s.name == "gateway_requests_total"
    }
    assert requests[("ollama", "minilm-a", "200")] == 3
    assert requests[("ollama", "", "401")] == 1
    inputs = {s.labels["model"]: s.value for s in families["gateway_inputs"].samples}
    assert inputs["minilm-a"] == 4  # "same" is a cache hit after the first request
    depth = [s for s in families["gateway_queue_depth"].samples if s.labels["model"] == "minilm-a"]
    assert [s.value for s in depth] == [0.0]  # one live process, summed
    loaded = families["gateway_model_memory_bytes"].samples
    assert any(s.labels["model"] == "minilm-a" and s.value > 0 for s in loaded)
