"""Ollama's model routes: /api/tags, /api/show, /api/ps, /api/pull (NDJSON progress),
/api/delete. Part of the Ollama Router (gateway.api.ollama)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from litestar import Controller, Response, delete, get, head, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Stream

from gateway.api.contract import STREAM_MEDIA_TYPE
from gateway.api.ollama_wire import (
    DeleteBody,
    PsResponse,
    PullBody,
    PullStatus,
    ShowBody,
    ShowResponse,
    TagsResponse,
    listed,
    ps_row,
    shown,
)
from gateway.errors import InvalidRequest
from gateway.services import ModelAdmin
from gateway.specs import AnySpec

PULL_RESPONSES = {
    200: ResponseSpec(
        PullStatus,
        description="Progress, one PullStatus per line (application/x-ndjson) while `stream` "
        'is true; else one {"status": "success"} when done.',
        generate_examples=False,
    )
}


class OllamaModelsController(Controller):
    path = "/"
    tags = ["Ollama models"]

    @get("/api/tags")
    async def list_models(self, models: NamedDependency[ModelAdmin]) -> TagsResponse:
        return TagsResponse([listed(row.info, row.digest) for row in await models.available()])

    @head("/api/tags", include_in_schema=False)
    async def tags_head(self) -> None:
        return None

    @post("/api/show", status_code=200)
    async def show(
        self, data: JSONBody[ShowBody], models: NamedDependency[ModelAdmin]
    ) -> ShowResponse:
        # As Ollama (and /v1/models/{id}): a model is shown once its files are pulled.
        return shown(await models.show(data.model or data.name))

    @get("/api/ps")
    async def ps(self, models: NamedDependency[ModelAdmin]) -> PsResponse:
        rows = [ps_row(model) for model in models.loaded()]
        rows.sort(key=lambda row: row.expires_at, reverse=True)
        return PsResponse(rows)

    @post(
        "/api/pull",
        status_code=200,
        responses=PULL_RESPONSES,
        opt={STREAM_MEDIA_TYPE: "application/x-ndjson"},
    )
    async def pull(
        self, data: JSONBody[PullBody], models: NamedDependency[ModelAdmin]
    ) -> Response[PullStatus] | Stream:
        name = data.model or data.name
        if not name:
            raise InvalidRequest("model is required", param="model")
        events = _pull_events(models, models.resolve(name))
        if data.stream:
            return Stream(_ndjson(events), media_type="application/x-ndjson")
        async for event in events:
            if isinstance(event, Exception):
                raise event
        return Response(PullStatus(status="success"))

    @delete("/api/delete", status_code=200)
    async def delete_model(
        self, data: JSONBody[DeleteBody], models: NamedDependency[ModelAdmin]
    ) -> Response[bytes]:
        name = data.model or data.name
        if not name:
            raise InvalidRequest("model is required", param="model")
        await models.delete(name)
        return Response(b"", status_code=200)


async def _pull_events(models: ModelAdmin, spec: AnySpec) -> AsyncIterator[PullStatus | Exception]:
    """The progress of the (single-flight) pull as a stream; a failure ends it."""
    queue: asyncio.Queue[PullStatus] = asyncio.Queue()
    seen_success = False

    def listener(status: str, digest: str | None, total: int | None, done: int | None) -> None:
        queue.put_nowait(PullStatus(status=status, digest=digest, total=total, completed=done))

    pull = asyncio.ensure_future(models.pull(spec, listener))
    try:
        while not (pull.done() and queue.empty()):
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, pull}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                event = getter.result()
                seen_success = seen_success or event.status == "success"
                yield event
            else:
                getter.cancel()
        error = pull.exception()
        if isinstance(error, Exception):
            yield error
        elif not seen_success:  # joined a pull whose last lines were sent before we came
            yield PullStatus(status="success")
    finally:
        if not pull.done():
            pull.cancel()


async def _ndjson(events: AsyncIterator[PullStatus | Exception]) -> AsyncIterator[bytes]:
    async for event in events:
        if isinstance(event, Exception):
            message = getattr(event, "message", str(event))
            yield msgspec.json.encode({"error": message}) + b"\n"
            return
        yield msgspec.json.encode(event) + b"\n"
