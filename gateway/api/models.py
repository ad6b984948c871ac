"""Model lifecycle over HTTP: Ollama's /api/ps, /api/pull, /api/delete, and /admin/models.

/api/ps and /api/pull follow Ollama field for field; /admin/models is the gateway's own view
with measured memory, in-flight counts, batching and cache figures.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.response import Stream

from gateway.api.ollama import ModelDetails, details_of
from gateway.core import Gateway
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from gateway.manager import LoadedModel
from gateway.registry import tagged_name
from gateway.sources import LocalSource, SourceError

# What Ollama reports for keep_alive < 0: now plus math.MaxInt64 nanoseconds (~292 years).
FOREVER = timedelta(seconds=(2**63 - 1) / 1e9)


class PsModel(msgspec.Struct, omit_defaults=True):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: datetime
    size_vram: int
    context_length: int | None = None


class PsResponse(msgspec.Struct):
    models: list[PsModel]


class PullBody(msgspec.Struct):
    model: str = ""
    name: str = ""  # deprecated spelling
    insecure: bool = False
    stream: bool = True


class PullStatus(msgspec.Struct, omit_defaults=True):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class DeleteBody(msgspec.Struct):
    model: str = ""
    name: str = ""


class InUse(GatewayError):
    status_code = 409
    code = "model_in_use"


def expires_at(model: LoadedModel) -> datetime:
    now = datetime.now(UTC)
    if model.keep_alive == math.inf:
        return now + FOREVER
    if model.expires_at is None:  # busy: the timer starts when the last request ends
        return now + timedelta(seconds=model.keep_alive)
    return datetime.fromtimestamp(model.expires_at, UTC)


def model_view(gw: Gateway, model: LoadedModel) -> dict[str, Any]:
    stats = model.batcher.stats
    return {
        "name": model.spec.name,
        "kind": model.spec.kind,
        "device": model.device,
        "compute": model.compute,
        "memory_bytes": model.memory_bytes,
        "load_bytes": model.load_bytes,
        "in_flight": model.in_flight,
        "queued": model.batcher.queued,
        "loaded_at": model.loaded_at,
        "last_used": model.last_used,
        "load_seconds": round(model.load_seconds, 3),
        "keep_alive": None if model.keep_alive == math.inf else model.keep_alive,
        "expires_at": model.expires_at,
        "pinned": model.spec.pinned,
        "batch_invariant": model.encoder.batch_invariant,
        "batches": stats.batches,
        "items": stats.items,
        "padding_ratio": round(stats.padding_ratio, 3),
        "run_overhead_tokens": round(model.batcher.overhead_tokens, 1),
        "busy_seconds": round(stats.busy_seconds, 3),
        "rejected": stats.rejected,
        "cache_hits": gw.service.cache.hits[model.spec.name],
        "cache_misses": gw.service.cache.misses[model.spec.name],
        "cache_hit_rate": gw.service.cache.hit_rate(model.spec.name),
    }


class ModelsController(Controller):
    path = "/"
    tags = ["Model lifecycle"]

    @get("/api/ps")
    async def ps(self, gw: Gateway) -> PsResponse:
        rows = []
        for model in gw.manager.loaded():
            info = gw.catalog.info(model.spec)
            on_gpu = model.device == "cuda"
            rows.append(
                PsModel(
                    name=tagged_name(model.spec.name),
                    model=tagged_name(model.spec.name),
                    size=model.memory_bytes,
                    digest=gw.catalog.digest(model.spec),
                    details=details_of(info),
                    expires_at=expires_at(model),
                    size_vram=model.memory_bytes if on_gpu else 0,
                    context_length=info.context_length,
                )
            )
        rows.sort(key=lambda row: row.expires_at, reverse=True)
        return PsResponse(rows)

    @post("/api/pull", status_code=200)
    async def pull(self, data: PullBody, gw: Gateway) -> Any:
        name = data.model or data.name
        if not name:
            raise InvalidRequest("model is required", param="model")
        spec = gw.service.resolve(name).spec
        events = _pull_events(gw, spec)
        if data.stream:
            return Stream(_ndjson(events), media_type="application/x-ndjson")
        async for event in events:
            if isinstance(event, Exception):
                raise event
        return PullStatus(status="success")

    @delete("/api/delete", status_code=200)
    async def delete_model(self, data: DeleteBody, gw: Gateway) -> Response[bytes]:
        name = data.model or data.name
        if not name:
            raise InvalidRequest("model is required", param="model")
        spec = gw.service.resolve(name).spec
        if any(
            isinstance(gw.store.source_of(spec, ref), LocalSource) for ref in spec.files.values()
        ):
            raise InvalidRequest(f"model '{name}' is served from a local folder; delete it there")
        loaded = gw.manager.get(spec.name)
        if loaded is not None and not await gw.manager.unload(spec.name, reason="deleted"):
            raise InUse(f"model '{name}' is serving requests; try again when they finish")
        if not await asyncio.to_thread(gw.store.delete, spec):
            raise ModelNotFound(f"model '{name}' not found")
        return Response(b"", status_code=200)

    @get("/admin/models")
    async def admin_models(self, gw: Gateway) -> dict[str, Any]:
        loaded = {model.spec.name: model for model in gw.manager.loaded()}
        models = []
        for spec in gw.registry:
            row: dict[str, Any] = {"name": spec.name, "kind": spec.kind}
            if spec.name in loaded:
                row.update(model_view(gw, loaded[spec.name]), state="loaded")
            else:
                row["state"] = "ready" if gw.store.is_present(spec) else "not pulled"
            row["estimate_bytes"] = gw.manager.estimate(spec) if gw.store.is_present(spec) else None
            if spec.name in gw.manager.load_failures:
                row["last_load_error"] = gw.manager.load_failures[spec.name]
            models.append(row)
        return {
            "memory": gw.manager.memory_view(),
            "cache": gw.service.cache.view(),
            "models": models,
        }


async def _pull_events(gw: Gateway, spec: Any) -> AsyncIterator[PullStatus | Exception]:
    """Progress of `store.pull` (which runs in a thread) as an async stream."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[PullStatus | Exception | None] = asyncio.Queue()

    def report(status: str, digest: str | None, total: int | None, done: int | None) -> None:
        event = PullStatus(status=status, digest=digest, total=total, completed=done)
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def run() -> None:
        try:
            gw.store.pull(spec, report)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except SourceError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, InvalidRequest(str(exc)))
        except Exception as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)

    async with gw.pull_lock(spec.name):
        worker = loop.run_in_executor(None, run)
        while (event := await queue.get()) is not None:
            yield event
            if isinstance(event, Exception):
                break
        await worker


async def _ndjson(events: AsyncIterator[PullStatus | Exception]) -> AsyncIterator[bytes]:
    async for event in events:
        if isinstance(event, Exception):
            message = getattr(event, "message", str(event))
            yield msgspec.json.encode({"error": message}) + b"\n"
            return
        yield msgspec.json.encode(event) + b"\n"
