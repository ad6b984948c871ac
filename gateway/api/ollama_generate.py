"""Ollama's /api/generate and /api/chat, which an embedding gateway cannot serve.

Clients that probe a model by generating (n8n's Ollama rerank node in `ollama` mode, chat UIs
listing every model from /api/tags) get Ollama's own answer for an embedding-only model: 400
`"all-minilm" does not support generate` (or chat), and 404 for a model that is not there.
"""

from __future__ import annotations

from typing import Any, NoReturn

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.errors import InvalidRequest
from gateway.services import EmbeddingService


class GenerateBody(msgspec.Struct):
    """Only the model matters; prompt, messages, options and the rest are not read."""

    model: str = ""


def refuse(embedding: EmbeddingService, name: str, capability: str) -> NoReturn:
    if not name:
        raise InvalidRequest("model is required", param="model")
    embedding.resolve(name)  # 404 for a model the registry does not have
    raise InvalidRequest(f'"{name}" does not support {capability}', param="model")


class GenerateController(Controller):
    path = "/api"
    tags = ["Ollama"]

    # Not operations the gateway serves (they only ever answer 400 or 404): kept out of the
    # OpenAPI document, which describes what succeeds.
    @post("/generate", status_code=200, include_in_schema=False)
    async def generate(
        self, data: JSONBody[GenerateBody], embedding: NamedDependency[EmbeddingService]
    ) -> dict[str, Any]:
        refuse(embedding, data.model, "generate")

    @post("/chat", status_code=200, include_in_schema=False)
    async def chat(
        self, data: JSONBody[GenerateBody], embedding: NamedDependency[EmbeddingService]
    ) -> dict[str, Any]:
        refuse(embedding, data.model, "chat")
