"""Ollama's /api/generate and /api/chat, which an embedding gateway cannot serve, except to unload.

An empty prompt (or no messages) with `keep_alive: 0` is Ollama's unload request: `ollama stop`
sends it, and so do UIs that free memory. It unloads the model (now, or when its requests in
flight end) and answers 200 with `done_reason: "unload"`, loaded or not, as Ollama does.

Anything else gets Ollama's own answer for an embedding-only model: 400 `"all-minilm" does not
support generate` (or chat), and 404 for a model that is not there. Clients that probe a model
by generating (n8n's Ollama rerank node in `ollama` mode, chat UIs listing every model from
/api/tags) see what they would see from Ollama.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.api.ollama_wire import keep_alive_seconds
from gateway.errors import InvalidRequest
from gateway.services import ModelAdmin


class GenerateBody(msgspec.Struct):
    """What decides between unloading and refusing; options and the rest are not read."""

    model: str = ""
    prompt: str | None = None
    messages: list[Any] | None = None
    keep_alive: float | str | None = None


class Unloaded(msgspec.Struct):
    model: str
    created_at: datetime
    response: str = ""
    done: bool = True
    done_reason: str = "unload"


class ChatMessage(msgspec.Struct):
    role: str = "assistant"
    content: str = ""


class ChatUnloaded(msgspec.Struct):
    model: str
    created_at: datetime
    message: ChatMessage = msgspec.field(default_factory=ChatMessage)
    done: bool = True
    done_reason: str = "unload"


async def unload_or_refuse(
    models: ModelAdmin, data: GenerateBody, capability: str, nothing_to_run: bool
) -> None:
    """Return after unloading when the body is Ollama's unload request; raise otherwise."""
    spec = models.resolve(data.model)  # 400 without one, 404 for one the registry lacks
    if nothing_to_run and keep_alive_seconds(data.keep_alive) == 0:
        await models.unload(spec.name)
        return
    raise InvalidRequest(f'"{data.model}" does not support {capability}', param="model")


class GenerateController(Controller):
    path = "/api"
    tags = ["Ollama"]

    # Not operations the gateway serves (only the unload succeeds): kept out of the OpenAPI
    # document, which describes what the gateway is for.
    @post("/generate", status_code=200, include_in_schema=False)
    async def generate(
        self, data: JSONBody[GenerateBody], models: NamedDependency[ModelAdmin]
    ) -> Unloaded:
        await unload_or_refuse(models, data, "generate", not data.prompt)
        return Unloaded(data.model, datetime.now(UTC))

    @post("/chat", status_code=200, include_in_schema=False)
    async def chat(
        self, data: JSONBody[GenerateBody], models: NamedDependency[ModelAdmin]
    ) -> ChatUnloaded:
        await unload_or_refuse(models, data, "chat", not data.messages)
        return ChatUnloaded(data.model, datetime.now(UTC))
