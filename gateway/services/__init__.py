"""Narrow services, one job each, injected into the API routers.

- `EmbeddingService`: embed requests (text, images, multivector) against their model.
- `RerankService`: rank documents against a query with any model that can.
- `ModelAdmin`: list, show, pull (single-flight), delete, what is loaded, /admin/models.
- `HealthService`: /health and /info. `ImageStatsService`: /img/stats.
- `TokenService`: TEI's /tokenize, /decode and /embed_all.
- `SparseService`: TEI's /embed_sparse (SPLADE models).
Routers see these and the request/result types; never the manager, the store or the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.services.embedding import EmbeddingService
from gateway.services.health import HealthService
from gateway.services.media import ImageStatsService
from gateway.services.models import ModelAdmin
from gateway.services.rerank import RerankService
from gateway.services.sparse import SparseResult, SparseService
from gateway.services.tokens import TokenService
from gateway.services.types import EmbedRequest, EmbedResult, RerankRequest, RerankResult

__all__ = [
    "EmbedRequest",
    "EmbedResult",
    "EmbeddingService",
    "HealthService",
    "ImageStatsService",
    "ModelAdmin",
    "RerankRequest",
    "RerankResult",
    "RerankService",
    "Services",
    "SparseResult",
    "SparseService",
    "TokenService",
]


@dataclass(frozen=True)
class Services:
    embedding: EmbeddingService
    rerank: RerankService
    models: ModelAdmin
    health: HealthService
    images: ImageStatsService
    tokens: TokenService
    sparse: SparseService
