"""Which model an HTTP request will run on, read from its path and body.

Serve's model multiplexing routes a request to a replica that holds its model, by a model id
set on the request. HTTP clients such as `ollama` or `openai` do not send Serve's header, so
the ingress reads the model from the JSON body (or the route's default model) and passes it on.
The id is only a placement hint: a request the hint gets wrong is still answered correctly by
the replica it lands on, which loads what the request needs.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from gateway.errors import ModelNotFound
from gateway.registry import Registry
from gateway.sources import ModelStore

# Routes that run a model, by how the model is chosen; every POST route of the app is in one
# of these sets or in NO_MODEL_ROUTES (tests/unit/test_distributed_routing.py checks the app).
# The body's `model`, else the registry's default model:
EMBED_ROUTES = frozenset(
    {
        "/api/embed",
        "/api/embeddings",
        "/v1/embeddings",
        "/embeddings",  # OpenAI's, unprefixed (Infinity)
        "/v1/embed",  # Cohere
        "/v2/embed",
        "/embed_all",  # TEI
        "/similarity",  # TEI
    }
)
# Shared by TEI and nomic-api-rs; either body may name a model (on nomic-api-rs's, the gateway's
# extension field).
BY_BODY_ROUTES = frozenset({"/", "/embed"})
# nomic-api-rs's routes: the default text (or image) model, unless the body's `model` names one.
NATIVE_ROUTES = frozenset({"/txt/embed", "/batch", "/txt/batch"})
IMAGE_ROUTES = frozenset({"/img/embed", "/img/batch"})
RERANK_ROUTES = frozenset({"/v1/rerank", "/v2/rerank", "/rerank", "/api/rerank"})
# TEI's sparse route: the body's `model`, else the registry's sparse model.
SPARSE_ROUTES = frozenset({"/embed_sparse"})
# Ollama's unload request (`{model, keep_alive: 0}`; anything else there is refused): routed by
# the body's model to the replica that holds it, which must not place (load) it first.
UNLOAD_ROUTES = frozenset({"/api/generate", "/api/chat"})
# POST routes that load no model: any replica answers them. /tokenize and /decode read only the
# tokenizer; routing them would place (load) the model on a replica.
NO_MODEL_ROUTES = frozenset({"/api/show", "/api/pull", "/img/stats", "/tokenize", "/decode"})
TEXT_ROUTES = EMBED_ROUTES | BY_BODY_ROUTES | NATIVE_ROUTES


class ModelRouter:
    """Maps (path, body) to the canonical registry name of the model that serves it."""

    def __init__(self, registry: Registry, store: ModelStore) -> None:
        self.registry = registry
        self.store = store
        self._defaults: dict[frozenset[str], Callable[[], str | None]] = {
            IMAGE_ROUTES: lambda: registry.default_image_model,
            RERANK_ROUTES: self._default_reranker,
            SPARSE_ROUTES: lambda: registry.default_sparse_model or registry.default_model,
            TEXT_ROUTES: lambda: registry.default_model,
        }

    def model_for(self, path: str, body: bytes, method: str = "POST") -> str | None:
        """The model id to route by, or None for requests that run no model (or name an
        unknown one: any replica answers those with the right error)."""
        if method.upper() != "POST":  # every route that runs a model is a POST
            return None
        path = path.rstrip("/") or "/"
        if path in UNLOAD_ROUTES:  # no default model: an unload names the one it unloads
            named = _model_field(body)
            return None if named is None else self._known(named)
        routes = next((r for r in self._defaults if path in r), None)
        if routes is None:
            return None
        named = _model_field(body)
        if named is None:
            return self._defaults[routes]()
        return self._known(named)

    def _known(self, named: str) -> str | None:
        try:
            return self.registry.resolve(named).spec.name
        except ModelNotFound:
            return None

    def _default_reranker(self) -> str:
        # As the rerank routes choose: the registry's reranker if it is pulled, else the
        # default embedder (which ranks by cosine).
        preferred = self.registry.models[self.registry.default_rerank_model]
        return preferred.name if self.store.is_present(preferred) else self.registry.default_model


def places_model(path: str) -> bool:
    """Whether a request routed to a replica by its model should have the replica place (load)
    that model first: all but an unload."""
    return (path.rstrip("/") or "/") not in UNLOAD_ROUTES


class _NamesModel(msgspec.Struct):
    model: str | None = None


# Decoding into a one-field struct skips the inputs without building them: a large body costs
# a scan, not a parse.
_decoder = msgspec.json.Decoder(_NamesModel)


def _model_field(body: bytes) -> str | None:
    if not body:
        return None
    try:
        decoded = _decoder.decode(body)
    except msgspec.DecodeError:  # not JSON, not an object, or `model` not a string
        return None
    model = decoded.model
    return model if model and model.strip() else None
