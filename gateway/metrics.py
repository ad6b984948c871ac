"""Every Prometheus metric the gateway exports, and the small calls that record them.

The rest of the code calls the functions below (one line at each hook) and never touches a
metric object, so names and labels live here only; docs/metrics.md lists them for dashboards.

With PROMETHEUS_MULTIPROC_DIR set before this module is imported, prometheus-client keeps the
values in files there and `render` sums them over every live worker process. Gauges therefore
say how to combine processes (`multiprocess_mode`), and each process sets only its own state.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "render"]

# From 100 us: a one-text request answered from the cache (or by a small model on the fast
# lane) takes a few tenths of a millisecond, and a run of a small batch about one.
_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_WAIT_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

REQUESTS = Counter(
    "gateway_requests", "HTTP requests answered", ["route", "model", "status"]
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Request start to the last body byte",
    ["route", "model"],
    buckets=_LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "gateway_queue_wait_seconds",
    "Per input: time queued until its batch starts",
    ["model"],
    buckets=_WAIT_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "gateway_queue_depth",
    "Inputs waiting in the model's batch queue",
    ["model"],
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge(
    "gateway_model_in_flight",
    "Requests holding the model right now",
    ["model"],
    multiprocess_mode="livesum",
)
QUEUE_REJECTIONS = Counter(
    "gateway_queue_rejections", "Requests refused because the queue was full", ["model"]
)
BATCH_SIZE = Histogram(
    "gateway_batch_size", "Inputs per inference run", ["model"], buckets=_SIZE_BUCKETS
)
BATCH_TOKENS = Histogram(
    "gateway_batch_tokens",
    "Tokens per inference run: real, and padded to the batch's longest input",
    ["model", "kind"],
    buckets=_TOKEN_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "gateway_batch_duration_seconds",
    "One inference run on the device",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
INPUTS = Counter("gateway_inputs", "Inputs run through the model (cache hits excluded)", ["model"])
TOKENS = Counter("gateway_tokens", "Real (unpadded) tokens run through the model", ["model"])
CACHE_LOOKUPS = Counter(
    "gateway_cache_lookups",
    "Embedding cache lookups of served requests, one per input",
    ["model", "result"],
)
LOADS = Counter("gateway_model_loads", "Model loads", ["model", "outcome"])
LOAD_SECONDS = Histogram(
    "gateway_model_load_duration_seconds",
    "Successful model loads",
    ["model"],
    buckets=_LOAD_BUCKETS,
)
UNLOADS = Counter("gateway_model_unloads", "Model unloads", ["model", "reason"])
EVICTIONS = Counter(
    "gateway_model_evictions",
    "Unloads forced by the memory budget or the loaded-model limit",
    ["model", "reason"],
)
MODEL_MEMORY = Gauge(
    "gateway_model_memory_bytes",
    "Measured footprint of a loaded model",
    ["model", "device"],
    multiprocess_mode="livesum",
)
MEMORY_BUDGET = Gauge(
    "gateway_memory_budget_bytes",
    "Memory the loaded models may use",
    ["device"],
    multiprocess_mode="livemax",
)
IMAGE_FETCHES = Counter("gateway_image_fetches", "Image URL fetches", ["outcome"])
FAST_LANE = Counter(
    "gateway_fast_lane_requests",
    "Embedding requests the fast lane answered, or passed to the framework",
    ["outcome"],
)

# -- route families ------------------------------------------------------------------------------

_ROUTES = {
    "/api/embed": "ollama",
    "/api/embeddings": "ollama",
    "/api/tags": "ollama",
    "/api/show": "ollama",
    "/api/chat": "ollama",
    "/api/generate": "ollama",
    "/v1/embeddings": "openai",
    "/v1/models": "openai",
    "/embeddings": "openai",
    "/models": "openai",
    "/v1/embed": "cohere",
    "/v2/embed": "cohere",
    "/v1/rerank": "rerank",
    "/v2/rerank": "rerank",
    "/rerank": "rerank",
    "/api/rerank": "rerank",
    "/embed": "native",
    "/batch": "native",
    "/info": "native",
    "/embed_all": "native",
    "/embed_sparse": "native",
    "/similarity": "native",
    "/tokenize": "native",
    "/decode": "native",
    "/api/ps": "lifecycle",
    "/api/pull": "lifecycle",
    "/api/delete": "lifecycle",
    "/admin/models": "lifecycle",
    "/": "meta",
    "/health": "meta",
    "/health/live": "meta",
    "/health/ready": "meta",
    "/api/version": "meta",
    "/metrics": "meta",
    "/openapi.json": "meta",
}
_ROUTE_PREFIXES = (
    ("/txt/", "native"), ("/img/", "native"), ("/v1/models/", "openai"), ("/models/", "openai"),
)  # fmt: skip


def route_family(path: str, method: str = "GET") -> str:
    """The API family of a request: a label with a handful of values, never the path.

    `/` is two routes: GET/HEAD is the meta greeting, POST is an embedding (TEI's body or
    nomic-api-rs's), counted with the native routes it shares a handler shape with (`/embed`).
    """
    if path == "/" and method == "POST":
        return "native"
    if path in _ROUTES:
        return _ROUTES[path]
    if path == "/docs" or path.startswith("/docs/"):
        return "meta"
    for prefix, family in _ROUTE_PREFIXES:
        if path.startswith(prefix):
            return family
    return "other"


# Labelled series, bound once: `labels()` validates and locks on every call, and a request
# records a dozen samples (~50 us of the one-text path). Label values are bounded (models in the
# registry, route families, statuses, fixed outcomes).
_BOUND: dict[tuple[int, tuple[str, ...]], Any] = {}
M = TypeVar("M", Counter, Gauge, Histogram)


def _series(metric: M, *labels: str) -> M:
    key = (id(metric), labels)
    bound = _BOUND.get(key)
    if bound is None:
        bound = _BOUND[key] = metric.labels(*labels)
    return bound


# -- hooks ---------------------------------------------------------------------------------------


def request_done(route: str, model: str, status: int, seconds: float) -> None:
    _series(REQUESTS, route, model, str(status)).inc()
    _series(REQUEST_SECONDS, route, model).observe(seconds)


def queue_depth(model: str, depth: int) -> None:
    _series(QUEUE_DEPTH, model).set(depth)


def queue_rejected(model: str) -> None:
    _series(QUEUE_REJECTIONS, model).inc()


def in_flight(model: str, count: int) -> None:
    _series(IN_FLIGHT, model).set(count)


def batch_ran(
    model: str, waits: list[float], real_tokens: int, padded_tokens: int, seconds: float
) -> None:
    """One inference run: `waits` holds each input's time in the queue."""
    wait = _series(QUEUE_WAIT, model)
    for seconds_queued in waits:
        wait.observe(seconds_queued)
    _series(BATCH_SIZE, model).observe(len(waits))
    _series(BATCH_TOKENS, model, "real").observe(real_tokens)
    _series(BATCH_TOKENS, model, "padded").observe(padded_tokens)
    _series(BATCH_SECONDS, model).observe(seconds)
    _series(INPUTS, model).inc(len(waits))
    _series(TOKENS, model).inc(real_tokens)


def cache_lookups(model: str, hits: int, misses: int) -> None:
    if hits:
        _series(CACHE_LOOKUPS, model, "hit").inc(hits)
    if misses:
        _series(CACHE_LOOKUPS, model, "miss").inc(misses)


def model_loaded(model: str, device: str, memory_bytes: int, seconds: float) -> None:
    _series(LOADS, model, "success").inc()
    _series(LOAD_SECONDS, model).observe(seconds)
    model_memory(model, device, memory_bytes)


def model_memory(model: str, device: str, memory_bytes: int) -> None:
    _series(MODEL_MEMORY, model, "vram" if device == "cuda" else "ram").set(memory_bytes)


def model_load_failed(model: str) -> None:
    _series(LOADS, model, "failure").inc()


def unload_reason(text: str) -> tuple[str, str | None]:
    """(unload reason, eviction reason or None) for the manager's free-text reason."""
    if text.startswith("making room"):
        return "evicted", "make_room"
    if text.startswith("over budget"):
        return "evicted", "over_budget"
    known = {
        "keep_alive 0": "keep_alive_zero",
        "keep_alive expired": "keep_alive_expired",
        "deleted": "deleted",
        "shutdown": "shutdown",
    }
    return known.get(text, "requested"), None


def model_unloaded(model: str, device: str, reason: str) -> None:
    unload, eviction = unload_reason(reason)
    _series(UNLOADS, model, unload).inc()
    if eviction is not None:
        _series(EVICTIONS, model, eviction).inc()
    model_memory(model, device, 0)
    _series(IN_FLIGHT, model).set(0)
    _series(QUEUE_DEPTH, model).set(0)


def memory_budget(device: str, budget: int | None) -> None:
    if budget is not None:  # uncapped: no sample, rather than a made-up number
        _series(MEMORY_BUDGET, "vram" if device == "cuda" else "ram").set(budget)


def image_fetched(outcome: str) -> None:
    _series(IMAGE_FETCHES, outcome).inc()


def fast_lane(answered: bool) -> None:
    _series(FAST_LANE, "answered" if answered else "passed").inc()


# -- exposition ----------------------------------------------------------------------------------


def render() -> bytes:
    """The text exposition of every metric (summed over processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def process_exited() -> None:
    """Drop this process's live gauges from the shared files (multiprocess mode only)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
