"""The gateway's own views of its state, as typed wire structs (/admin/models, /health, /info).

msgspec's UNSET marks a field that does not apply (a model that is not loaded has no queue):
it is left out of the JSON, while a None that applies is written as null.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from gateway.budget import MemoryView
from gateway.cache import CacheView, EmbeddingCache
from gateway.manager import LoadedModel


class AdminModel(msgspec.Struct):
    """One registry model; the loaded-only fields are left out unless it is loaded."""

    name: str
    kind: str
    state: str  # loaded, ready (files present) or not pulled
    estimate_bytes: int | None
    device: str | UnsetType = UNSET
    memory_bytes: int | UnsetType = UNSET
    load_bytes: int | UnsetType = UNSET
    # Of memory_bytes: large runs' working memory, held until the model idles (run_memory.py),
    # and how many times such memory was given back.
    working_bytes: int | UnsetType = UNSET
    memory_releases: int | UnsetType = UNSET
    in_flight: int | UnsetType = UNSET
    queued: int | UnsetType = UNSET
    loaded_at: float | UnsetType = UNSET
    last_used: float | UnsetType = UNSET
    load_seconds: float | UnsetType = UNSET
    keep_alive: float | UnsetType | None = UNSET  # None: forever
    expires_at: float | UnsetType | None = UNSET  # None: busy, or kept forever
    pinned: bool | UnsetType = UNSET
    batch_invariant: bool | UnsetType = UNSET
    # backend, device, precision, bucketed, and why they were chosen
    compute: dict[str, Any] | UnsetType = UNSET
    batches: int | UnsetType = UNSET
    items: int | UnsetType = UNSET
    padding_ratio: float | UnsetType = UNSET
    # The counts padding_ratio divides, exact: a client can take the ratio of any window.
    real_tokens: int | UnsetType = UNSET
    padded_tokens: int | UnsetType = UNSET
    # The padding worth one more run when cutting batches: the value used, where it came from
    # (registry, setting, measured, default), and what timing at load measured (None if pinned).
    run_overhead_tokens: float | UnsetType = UNSET
    run_overhead_source: str | UnsetType = UNSET
    run_overhead_measured: float | UnsetType | None = UNSET
    busy_seconds: float | UnsetType = UNSET
    rejected: int | UnsetType = UNSET
    cache_hits: int | UnsetType = UNSET
    cache_misses: int | UnsetType = UNSET
    cache_hit_rate: float | UnsetType | None = UNSET
    last_load_error: str | UnsetType = UNSET


class AdminModels(msgspec.Struct):
    memory: MemoryView
    cache: CacheView
    models: list[AdminModel]


def admin_loaded_fields(row: AdminModel, model: LoadedModel, cache: EmbeddingCache) -> AdminModel:
    stats = model.batcher.stats
    name = model.spec.name
    overhead = model.batcher.run_overhead
    return msgspec.structs.replace(
        row,
        device=model.device,
        memory_bytes=model.memory_bytes,
        load_bytes=model.load_bytes,
        working_bytes=model.batcher.memory.working_bytes,
        memory_releases=model.batcher.memory.releases,
        in_flight=model.in_flight,
        queued=model.batcher.queued,
        loaded_at=model.loaded_at,
        last_used=model.last_used,
        load_seconds=round(model.load_seconds, 3),
        keep_alive=None if model.keep_alive == math.inf else model.keep_alive,
        expires_at=model.expires_at,
        pinned=model.spec.pinned,
        batch_invariant=model.encoder.batch_invariant,
        compute=model.compute,
        batches=stats.batches,
        items=stats.items,
        padding_ratio=round(stats.padding_ratio, 3),
        real_tokens=stats.real_tokens,
        padded_tokens=stats.padded_tokens,
        run_overhead_tokens=round(overhead.tokens, 1),
        run_overhead_source=overhead.source,
        run_overhead_measured=None if overhead.measured is None else round(overhead.measured, 1),
        busy_seconds=round(stats.busy_seconds, 3),
        rejected=stats.rejected,
        cache_hits=cache.hits[name],
        cache_misses=cache.misses[name],
        cache_hit_rate=cache.hit_rate(name),
    )


class HealthView(msgspec.Struct):
    status: str  # OK, or degraded when the default model is not pulled
    default_model: str
    models: dict[str, str]  # name -> loaded, ready or not pulled
    text_model: bool
    vision_model: bool
    memory: MemoryView


class RuntimeView(msgspec.Struct):
    device: str
    threads: int
    onnxruntime: str
    providers: list[str]
    optimized_graph_cache: str | None
    # The process-wide compute setting and what it resolves to (gateway/backends/selection.py).
    backend: str
    precision: str
    default_placement: dict[str, Any]


class RegistryModelView(msgspec.Struct):
    name: str
    kind: str
    aliases: list[str]
    # Advertised Matryoshka widths (any 1..native width is served); None: not resizable.
    dimensions: list[int] | None = None


SettingValue = str | int | float | bool | list[str | int] | None


class InfoView(msgspec.Struct):
    version: str
    uptime_s: float
    default_model: str
    default_image_model: str | None
    registry: str
    settings: dict[str, SettingValue]
    runtime: RuntimeView
    models: list[RegistryModelView]
