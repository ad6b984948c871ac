"""The rerank service: one query against many documents, with any model that can rank.

Models that score pairs natively (ColBERT by MaxSim, cross-encoders), text embedders (by
cosine) and sparse models (SPLADE, by the dot product) rank; others are a 400 that says what
the model can do. Requests that name no model
(Cohere v1 allows it) use the registry's reranker if it is pulled, else the default embedder.
"""

from __future__ import annotations

import time

import numpy as np

from gateway.encoders import capabilities_of, missing_capability
from gateway.encoders.views import can_rank, pair_scorer
from gateway.errors import InvalidRequest
from gateway.inputs import TextInput
from gateway.manager import ModelManager
from gateway.registry import Registry
from gateway.rerank import RerankScores, rerank
from gateway.services.checks import check_finite, check_inputs
from gateway.services.types import RerankRequest, RerankResult, named_model
from gateway.settings import Settings
from gateway.sources import ModelStore


class RerankService:
    def __init__(
        self, registry: Registry, store: ModelStore, models: ModelManager, settings: Settings
    ) -> None:
        self.registry = registry
        self.store = store
        self.models = models
        self.settings = settings

    def default_model(self) -> str:
        """The registry's reranker if it is pulled, else the default embedding model, which
        ranks by cosine."""
        preferred = self.registry.models[self.registry.default_rerank_model]
        return preferred.name if self.store.is_present(preferred) else self.registry.default_model

    async def rerank(self, request: RerankRequest) -> RerankResult:
        started = time.perf_counter()
        name = named_model(request.model) or self.default_model()
        if not name.strip():
            raise InvalidRequest("model is required", param="model")
        spec = self.registry.resolve(name).spec
        capabilities = capabilities_of(spec)
        if not can_rank(capabilities):
            raise missing_capability(spec.name, capabilities, "rerank text")
        if not request.query or not request.query.strip():
            raise InvalidRequest("query must be a non-empty string", param="query")
        if request.top_n is not None and request.top_n < 1:
            raise InvalidRequest("top_n must be at least 1", param="top_n")
        documents = [TextInput(d) for d in request.documents]
        check_inputs(documents, self.settings, request.documents_param)
        check_inputs([TextInput(request.query)], self.settings, "query", listed=False)
        if not request.documents:
            empty = np.zeros(0)
            return RerankResult(spec, [], empty, empty, 0, [], time.perf_counter() - started)
        async with self.models.use(spec, request.keep_alive) as (model, _):
            scores: RerankScores = await rerank(
                pair_scorer(model.encoder),
                model.batcher.submit,
                request.query,
                request.documents,
                truncate=request.truncate,
                scale="raw" if request.raw_scores else "normalized",
                documents_param=request.documents_param,
                document_tokens=request.document_tokens,
                chunks=request.chunks,
            )
        # Both: a cross-encoder's infinite logit has a finite sigmoid.
        check_finite(scores.raw, scores.relevance)
        return RerankResult(
            spec=spec,
            order=scores.top(request.top_n),
            relevance=scores.relevance,
            raw=scores.raw,
            tokens=scores.tokens,
            truncated=scores.truncated,
            total_seconds=time.perf_counter() - started,
            query_truncated=scores.query_truncated,
            scored=scores.scored,
        )
