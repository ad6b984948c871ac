"""The gateway on a local Ray Serve: 2 model replicas holding at most 2 models each, 3 models
(and two more names for evictions), answering the real `ollama` and `openai` clients with the
single-process server's vectors, and routing each model's requests to the replica holding it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ollama
import pytest
from openai import OpenAI

from gateway.settings import Settings
from tests.ray.conftest import COPIES
from tests.support.api import assert_ollama_error, assert_openai_error
from tests.support.models import MINILM_FP32, NO_CACHE, NOMIC
from tests.support.reference import cosines
from tools.corpus import SENTENCES
from tools.gateway_server import EXACT_MODE, START_ATTEMPTS, GatewayServer, free_port
from tools.paths import REPO

pytestmark = pytest.mark.timeout(240)

MODELS = ["all-minilm", MINILM_FP32, NOMIC]
REPLICAS, PER_REPLICA = 2, 2
TEXTS = SENTENCES[:6]
# Serve learns where a model was placed from the replica's report (pushed every 0.1 s).
PLACEMENT_PROPAGATION_SECONDS = 1.0
MAX_BODY_BYTES = 2**20


@pytest.fixture(scope="module")
def serve_url(ray_cluster: Any, multi_model_registry: Path) -> Iterator[str]:
    from ray import serve

    from gateway.distributed.options import RayServeOptions
    from gateway.distributed.serve_app import APP_NAME, build_app

    settings = Settings.load(
        environ={
            "GATEWAY_REGISTRY": str(multi_model_registry),
            "GATEWAY_MODELS_DIR": str(REPO / "models"),
            **EXACT_MODE,
            "GATEWAY_THREADS": "1",
            "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            **NO_CACHE,
        }
    )
    options = RayServeOptions(
        min_replicas=REPLICAS,
        max_replicas=REPLICAS,
        models_per_replica=PER_REPLICA,
        replica_cpus=0.5,
        ingress_cpus=0.25,
    )
    port = start_serve_on_a_free_port(serve)
    layout = build_app(settings, options)
    assert layout.model_options["num_replicas"] == REPLICAS
    serve.run(layout.app, name=APP_NAME, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]


def start_serve_on_a_free_port(serve: Any) -> int:
    """serve.start on a port free_port() found; another process may take it before Ray's proxy
    binds it (as tools.gateway_server retries a gateway): then shut down and try another."""
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            return port
        except RuntimeError as exc:
            if "Failed to bind" not in str(exc) or attempt == START_ATTEMPTS:
                raise
            serve.shutdown()
    raise AssertionError("unreachable")


def embed_via_ollama(url: str, model: str) -> np.ndarray:
    response = ollama.Client(host=url, timeout=60).embed(model=model, input=TEXTS)
    return np.asarray(response.embeddings, dtype=np.float32)


def embed_via_openai(url: str, model: str) -> np.ndarray:
    client = OpenAI(base_url=url + "/v1", api_key="unused", timeout=60, max_retries=0)
    data = client.embeddings.create(model=model, input=TEXTS).data  # base64 on the wire
    return np.asarray([item.embedding for item in data], dtype=np.float32)


@pytest.mark.parametrize("model", MODELS)
def test_clients_get_the_single_servers_vectors(
    serve_url: str, single_server: GatewayServer, model: str
) -> None:
    for embed in (embed_via_ollama, embed_via_openai):
        on_ray = embed(serve_url, model)
        alone = embed(single_server.url, model)
        assert on_ray.shape == alone.shape == (len(TEXTS), alone.shape[1])
        assert cosines(on_ray, alone).min() >= 0.99999, (embed.__name__, model)


def post_embed(client: httpx.Client, model: str) -> tuple[str, list[str]]:
    """One /api/embed; (the replica that answered, the models it holds afterwards)."""
    response = client.post("/api/embed", json={"model": model, "input": TEXTS[:2]})
    assert response.status_code == 200, response.text
    resident = response.headers["x-gateway-resident"]
    return response.headers["x-gateway-replica"], resident.split(",") if resident else []


def test_requests_for_a_model_land_on_the_replica_that_holds_it(serve_url: str) -> None:
    with httpx.Client(base_url=serve_url, timeout=60) as client:
        home: dict[str, str] = {}
        for model in MODELS:  # place each model, then let the routers learn where it went
            home[model], resident = post_embed(client, model)
            assert model in resident and len(resident) <= PER_REPLICA, resident
            time.sleep(PLACEMENT_PROPAGATION_SECONDS)
        assert len(set(home.values())) == REPLICAS, f"3 models on 2 replicas: {home}"
        for _ in range(4):
            for model in MODELS:
                replica, resident = post_embed(client, model)
                assert replica == home[model], f"{model} left {home[model]} for {replica}"
                assert model in resident and len(resident) <= PER_REPLICA, resident
        # The other wire families name the model in the body too (Cohere, OpenAI unprefixed).
        for model in MODELS:
            for path, body in (("/v2/embed", {"texts": TEXTS[:2], "input_type": "search_query"}),
                               ("/v1/embed", {"texts": TEXTS[:2]}),
                               ("/embeddings", {"input": TEXTS[:2]})):  # fmt: skip
                response = client.post(path, json={"model": model, **body})
                assert response.status_code == 200, (path, response.text)
                replica = response.headers["x-gateway-replica"]
                assert replica == home[model], f"{path} {model}: {home[model]} -> {replica}"


def test_ollamas_unload_reaches_the_replica_that_holds_the_model(serve_url: str) -> None:
    """`ollama stop` sends /api/generate {model, keep_alive: 0}: it must land where the model is
    and unload it there, and a model held nowhere is not loaded just to be unloaded."""
    model = MODELS[0]
    with httpx.Client(base_url=serve_url, timeout=60) as client:
        home, resident = post_embed(client, model)
        assert model in resident
        time.sleep(PLACEMENT_PROPAGATION_SECONDS)
        for path, extra in (("/api/generate", {}), ("/api/chat", {"messages": []})):
            response = client.post(path, json={"model": model, "keep_alive": 0, **extra})
            assert response.status_code == 200, response.text
            assert response.json()["done_reason"] == "unload"
            assert response.headers["x-gateway-replica"] == home, path
            assert model not in response.headers["x-gateway-resident"].split(","), path
        post_embed(client, model)  # back where it was, for the tests that follow
        time.sleep(PLACEMENT_PROPAGATION_SECONDS)


def test_more_models_than_slots_evict_and_reload(serve_url: str) -> None:
    names = [*MODELS, *COPIES]  # 5 models, 2 replicas x 2 slots
    with httpx.Client(base_url=serve_url, timeout=60) as client:
        held: dict[str, set[str]] = {}  # every model each replica has held along the way
        for model in [*names, *names]:
            replica, resident = post_embed(client, model)
            assert model in resident, (model, resident)
            assert len(resident) <= PER_REPLICA, f"{replica} holds {resident}"
            held.setdefault(replica, set()).update(resident)
            time.sleep(PLACEMENT_PROPAGATION_SECONDS / 2)
        assert set().union(*held.values()) == set(names)
        assert max(len(models) for models in held.values()) > PER_REPLICA, (
            f"some replica must have evicted one model for another: {held}"
        )


def test_every_api_family_and_its_errors_go_through(serve_url: str) -> None:
    with httpx.Client(base_url=serve_url, timeout=60) as client:
        assert client.get("/").text == "Ollama is running"
        # One X-Request-ID, as the single process sends: the client's, or a new one.
        echoed = client.get("/api/version", headers={"X-Request-ID": "my-req-1"})
        assert echoed.headers.get_list("x-request-id") == ["my-req-1"]
        assert len(client.get("/api/version").headers.get_list("x-request-id")) == 1
        assert {m["name"] for m in client.get("/api/tags").json()["models"]} >= {
            "all-minilm:latest"
        }
        native = client.post("/embed", json={"input": "a cat"})
        assert native.status_code == 200, native.text
        rerank = client.post(
            "/v1/rerank",
            json={"model": MINILM_FP32, "query": "a cat", "documents": ["stocks", "a kitten"]},
        )
        assert rerank.status_code == 200, rerank.text
        assert [r["index"] for r in rerank.json()["results"]] == [1, 0]
        assert_ollama_error(
            client.post("/api/embed", json={"model": "no-such-model", "input": "x"}),
            404,
            "no-such-model",
        )
        assert_openai_error(
            client.post("/v1/embeddings", json={"model": MINILM_FP32, "input": []}), 400
        )
        assert_ollama_error(client.post("/api/embed", content=b"{not json"), 400)
        too_big = client.post(
            "/v1/embeddings",
            json={"model": MINILM_FP32, "input": "x" * (MAX_BODY_BYTES + 10)},
        )
        assert too_big.status_code == 413, too_big.text
        assert "error" in too_big.json()
