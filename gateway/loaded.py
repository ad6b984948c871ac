"""A loaded model (encoder, batcher, lifecycle state) and how one is built and measured."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial

from gateway.backends import Placement, bucket_length, session_placement
from gateway.backends.vram import probe_vram_per_token, token_budget
from gateway.batching import Batcher
from gateway.budget import Resident
from gateway.encoders import AnyEncoder, build_encoder
from gateway.memory import GrowthMeter, Nvml, arena_reading, process_anonymous, release_free_heap
from gateway.run_overhead import RunOverhead, run_overhead_at_load
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources import ModelStore
from gateway.specs import ModelSpec

log = logging.getLogger("gateway.manager")


@dataclass(eq=False)
class LoadedModel:
    spec: ModelSpec
    encoder: AnyEncoder
    batcher: Batcher
    device: str
    load_seconds: float
    load_bytes: int  # measured at load: host RSS delta on CPU, device memory delta on GPU
    keep_alive: float
    digest: str  # sha256 of the model file (Ollama's digest)
    cache_id: str  # everything a pooled vector depends on (cache_identity): the cache's key
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    in_flight: int = 0
    compute: dict[str, object] = field(default_factory=dict)  # backend, precision, why
    budgeted_bytes: int = 0  # memory_bytes when the budget was last enforced for it
    expires_at: float | None = None
    expiry: asyncio.TimerHandle | None = None
    keep_alive_arrival: int = -1  # arrival number of the request whose keep_alive is set

    def set_keep_alive(self, seconds: float, arrival: int) -> None:
        """The last request to arrive wins, as in Ollama, whatever order requests end in."""
        if arrival > self.keep_alive_arrival:
            self.keep_alive, self.keep_alive_arrival = seconds, arrival

    @property
    def memory_bytes(self) -> int:
        """Load footprint, plus what the runtime keeps from its runs, plus the working memory
        of large runs while it is held (run_memory.py)."""
        memory = self.batcher.memory
        return self.load_bytes + memory.grown_bytes + memory.working_bytes

    @property
    def busy(self) -> bool:
        return self.in_flight > 0

    def resident(self, waiting: int = 0) -> Resident:
        return Resident(
            name=self.spec.name,
            bytes=self.memory_bytes,
            last_used=self.last_used,
            device=self.device,
            pinned=self.spec.pinned,
            in_flight=self.in_flight,
            waiting=waiting,
            expires_at=self.expires_at,
        )

    def cancel_expiry(self) -> None:
        self.expires_at = None
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None


def cache_identity(spec: ModelSpec, store: ModelStore, placement: Placement | None) -> str:
    """What a cached vector of this model depends on: every file's sha256 (weights, tokenizer,
    preprocessor), the whole registry entry (name, pooling, max_tokens, prefixes, ...), and how
    the graph runs (backend, precision, buckets). Two entries over the same weights, an fp32 twin
    of a bf16 model, or a re-pulled tokenizer never share an entry."""
    identity = hashlib.blake2b(digest_size=20)
    for role in sorted(spec.files):
        identity.update(f"{role}={store.digest(spec, role)}\0".encode())
    identity.update(repr(spec).encode())
    if placement is not None:
        identity.update(repr(dataclasses.replace(placement, reason="")).encode())
    return identity.hexdigest()


def build_measured(
    spec: ModelSpec,
    store: ModelStore,
    runtime: Runtime,
    nvml: Nvml,
    device: str,
    pinned_overhead: float | None = None,
) -> tuple[AnyEncoder, int, RunOverhead, float | None]:
    """On the device thread: build the encoder, time its runs (which also warms the runtime's
    arena) and measure the memory all that took. Returns (encoder, bytes, run overhead, VRAM
    bytes a batch token costs: GPU only, see backends/vram.py)."""
    gpu_before = nvml.memory() if device == "cuda" else None
    release_free_heap()  # both readings of a trimmed heap: see the footprint's below
    rss_before = process_anonymous()
    encoder = build_encoder(spec, store.paths(spec), runtime)
    placement = session_placement(encoder)
    if device == "cuda" and placement is not None and placement.device != "cuda":
        gpu_before = None  # CUDA did not start (or OpenVINO): host memory is what it takes
    overhead = run_overhead_at_load(
        encoder,
        registry=spec.run_overhead_tokens,
        setting=pinned_overhead,
        measurable=not encoder.one_row_inputs,
    )
    per_token = probe_vram_per_token(encoder, nvml) if gpu_before is not None else None
    # glibc keeps the pages the load's scratch (parsing, graph rewrites) freed resident until
    # trimmed: read untrimmed, a load into a trimmed heap counted 50-90 MiB of them for MiniLM
    # (first in a process, or after an unload trimmed it) and one into a heap left with free
    # pages did not, and the budget keeps the largest load measured.
    release_free_heap()
    footprint = max(process_anonymous() - rss_before, 0)
    if gpu_before is not None and (gpu_after := nvml.memory()) is not None:
        mine_before = gpu_before.used_by_this_process
        mine_after = gpu_after.used_by_this_process
        if mine_before is not None and mine_after is not None:
            footprint = max(mine_after - mine_before, 0)
        else:
            footprint = max(gpu_after.used - gpu_before.used, 0)
    return encoder, footprint, overhead, per_token


async def load_model(
    spec: ModelSpec,
    store: ModelStore,
    runtime: Runtime,
    nvml: Nvml,
    executor: Executor,
    settings: Settings,
    *,
    keep_alive: float,
    growth: Mapping[str, GrowthMeter] | None = None,
) -> LoadedModel:
    """Build `spec`'s encoder on the device's worker, measured, with a Batcher around it."""
    loop = asyncio.get_running_loop()
    device = "cuda" if runtime.wants_cuda else "cpu"
    started = time.perf_counter()
    # In the request's context: the runtime's lines about this load carry its request ID.
    encoder, footprint, overhead, per_token = await loop.run_in_executor(
        executor,
        contextvars.copy_context().run,
        build_measured,
        spec,
        store,
        runtime,
        nvml,
        device,
        settings.run_overhead_tokens,
    )
    placement = session_placement(encoder)
    if placement is not None and placement.device != device:
        # Where the session really runs (a CUDA session that fell back to the CPU, an OpenVINO
        # model beside CUDA ones): its memory counts there, and /api/ps reports no VRAM for it.
        log.info("%s runs on %s, not %s: %s", spec.name, placement.device, device, placement.reason)
        device = placement.device
    # Hashing a large file can take a second; never on the event loop.
    digest = await asyncio.to_thread(store.digest, spec)
    cache_id = await asyncio.to_thread(cache_identity, spec, store, placement)
    batcher = Batcher(
        encoder,
        executor,
        max_batch_size=spec.max_batch_size or settings.max_batch_size,
        max_batch_tokens=token_budget(
            spec.max_batch_tokens or settings.batch_tokens(device),
            per_token,
            nvml.memory() if device == "cuda" else None,
        ),
        max_queue=settings.max_queue,
        arena=arena_reading(device, nvml),
        run_overhead=overhead,
        bucket=partial(bucket_length, step=placement.bucket_step)
        if placement and placement.bucketed
        else None,
        growth=growth[device] if growth else None,
        # CUDA sessions keep their arena (nothing to release): counted as kept growth.
        release_tokens=settings.release_tokens if device == "cpu" else 0,
    )
    model = LoadedModel(
        spec=spec,
        encoder=encoder,
        batcher=batcher,
        device=device,
        load_seconds=time.perf_counter() - started,
        load_bytes=footprint,
        keep_alive=keep_alive,
        digest=digest,
        cache_id=cache_id,
        compute=compute_description(encoder, placement),
    )
    if not encoder.batch_invariant:
        log.warning(
            "%s quantizes activations dynamically: its inputs run one at a time so a "
            "vector never depends on what it is batched with",
            spec.name,
        )
    log.info(
        "loaded %s on %s in %.2fs (%.0f MiB)%s",
        spec.name,
        device,
        model.load_seconds,
        footprint / 2**20,
        f"; {one_row_reason(encoder)}" if encoder.one_row_inputs else "",
    )
    return model


def one_row_reason(encoder: AnyEncoder) -> str:
    """Why an encoder whose graph takes one row a run serves fewer inputs a second."""
    names = encoder.one_row_inputs
    shown = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
    return (
        f"one input per run: the graph fixes the batch axis of {shown} to 1, so each batch "
        "runs an input at a time (the same vectors, a batch of one's throughput)"
    )


def compute_description(encoder: AnyEncoder, placement: Placement | None) -> dict[str, object]:
    """`compute` in /admin/models: the placement, and a graph's limit of one row a run."""
    compute = placement.describe() if placement else {}
    if encoder.one_row_inputs:
        compute["rows_per_run"] = 1
        compute["rows_per_run_reason"] = one_row_reason(encoder)
    return compute
