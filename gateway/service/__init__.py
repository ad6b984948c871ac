"""The middle of the gateway: validate a request against its model, run it, shape the result."""

from gateway.service.embedding import EmbeddingService
from gateway.service.types import EmbedRequest, EmbedResult, RerankRequest, RerankResult

__all__ = ["EmbedRequest", "EmbedResult", "EmbeddingService", "RerankRequest", "RerankResult"]
