"""How the Ray ingress picks the model to route by: body field, aliases and tags, defaults per
route, and no hint for requests that run no model or name an unknown one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.distributed.routing import ModelRouter
from gateway.registry import Registry
from gateway.sources import ModelStore
from tools.paths import REPO


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(REPO / "registry.yaml")


def router(registry: Registry, models_dir: Path) -> ModelRouter:
    return ModelRouter(registry, ModelStore(models_dir, registry.base_dir))


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("path", "payload", "expected"),
    [
        ("/api/embed", body(model="all-minilm", input="x"), "all-minilm"),
        ("/api/embed", body(model="All-MiniLM:latest", input="x"), "all-minilm"),
        ("/v1/embeddings", body(model="nomic-embed-text:query", input="x"), "nomic-embed-text"),
        ("/api/embeddings", body(model="nomic-embed-text", prompt="x"), "nomic-embed-text"),
        ("/api/embed/", body(model="all-minilm", input="x"), "all-minilm"),
        (
            "/v1/rerank",
            body(model="answerai-colbert-small", query="q", documents=["d"]),
            "answerai-colbert-small",
        ),
        ("/embed", body(input="x"), "all-minilm"),
        ("/img/embed", body(content="data:image/png;base64,AA"), "nomic-embed-vision"),
        # nomic-api-rs's routes take the gateway's extension field `model` too.
        ("/embed", body(input="x", model="nomic-embed-text"), "nomic-embed-text"),
        ("/txt/embed", body(input="x", model="nomic-embed-text"), "nomic-embed-text"),
        ("/batch", body(inputs=["x"], model="nomic-embed-text"), "nomic-embed-text"),
        ("/txt/batch", body(inputs=["x"]), "all-minilm"),
        ("/img/embed", body(content="AA", model="no-such-model"), None),
        ("/api/embed", body(model="no-such-model", input="x"), None),
        ("/api/embed", body(input="x"), "all-minilm"),
        ("/api/embed", b"{not json", "all-minilm"),
        ("/api/embed", body(model=42, input="x"), "all-minilm"),
        ("/api/tags", b"", None),
        ("/api/show", body(model="all-minilm"), None),
        ("/api/pull", body(model="nomic-embed-text"), None),
        # OpenAI unprefixed, Cohere v1/v2 and TEI name the model in the body too.
        ("/embeddings", body(model="nomic-embed-text", input="x"), "nomic-embed-text"),
        ("/v1/embed", body(model="nomic-embed-text", texts=["x"]), "nomic-embed-text"),
        ("/v2/embed", body(model="nomic-embed-text", texts=["x"]), "nomic-embed-text"),
        ("/v1/embed", body(texts=["x"]), "all-minilm"),
        ("/embed_all", body(model="nomic-embed-text", inputs="x"), "nomic-embed-text"),
        ("/embed_all", body(inputs="x"), "all-minilm"),
        ("/embed_sparse", body(model="nomic-embed-text", inputs="x"), "nomic-embed-text"),
        # No model named: the registry's sparse model, not its default model.
        ("/embed_sparse", body(inputs="x"), "splade-pp-en"),
        ("/embed_sparse", body(inputs="x", model="splade_pp_en_v1"), "splade-pp-en"),
        # POST / and /embed: TEI's body (`inputs`) or nomic-api-rs's (`input`), either naming it.
        ("/embed", body(model="nomic-embed-text", inputs="x"), "nomic-embed-text"),
        ("/", body(model="nomic-embed-text", inputs="x"), "nomic-embed-text"),
        ("/", body(inputs="x"), "all-minilm"),
        ("/", body(input="x", model="nomic-embed-text"), "nomic-embed-text"),
        # These read only the tokenizer: routing them would load the model.
        ("/tokenize", body(model="nomic-embed-text", inputs="x"), None),
        ("/decode", body(ids=[1]), None),
        # Ollama's unload goes to the replica holding the model; no model named, any replica.
        ("/api/generate", body(model="nomic-embed-text:latest", keep_alive=0), "nomic-embed-text"),
        ("/api/chat", body(model="all-minilm", messages=[], keep_alive=0), "all-minilm"),
        ("/api/generate", body(keep_alive=0), None),
        ("/api/generate", body(model="no-such-model", keep_alive=0), None),
    ],
)
def test_model_for(
    registry: Registry, tmp_path: Path, path: str, payload: bytes, expected: str | None
) -> None:
    assert router(registry, tmp_path).model_for(path, payload) == expected


def test_rerank_without_a_model_follows_the_routes_default(
    registry: Registry, tmp_path: Path
) -> None:
    # As the rerank routes choose: the registry's reranker once pulled, else the default model.
    request = body(query="q", documents=["a", "b"])
    assert router(registry, tmp_path).model_for("/v1/rerank", request) == "all-minilm"
    reranker = registry.models[registry.default_rerank_model]
    store = ModelStore(tmp_path, registry.base_dir)
    for role in reranker.files:
        target = store.path_of(reranker, role)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"present")
    assert router(registry, tmp_path).model_for("/api/rerank", request) == reranker.name


def test_only_posts_run_models(registry: Registry, tmp_path: Path) -> None:
    assert router(registry, tmp_path).model_for("/", b"", "GET") is None
    assert router(registry, tmp_path).model_for("/api/embed", b"", "OPTIONS") is None


def test_every_post_route_of_the_app_is_classified(tmp_path: Path) -> None:
    """A POST route added to the app must be placed in one of routing's sets, or Ray's ingress
    silently sends its requests to any replica (which then loads the model outside Serve's
    count)."""
    from gateway.api.app import create_app
    from gateway.distributed import routing
    from gateway.settings import Settings

    app = create_app(Settings.load(environ={"GATEWAY_REGISTRY": str(REPO / "registry.yaml")}))
    posts = {r.path for r in app.routes if "POST" in getattr(r, "methods", ())}
    known = (
        routing.TEXT_ROUTES
        | routing.IMAGE_ROUTES
        | routing.RERANK_ROUTES
        | routing.SPARSE_ROUTES
        | routing.UNLOAD_ROUTES
        | routing.NO_MODEL_ROUTES
    )
    assert posts - known == set(), "unclassified POST routes"
    assert known - posts == set(), "routes the app does not have"
