"""Run a bulk job: the records not yet done, in chunks, each chunk's batches in parallel.

Chunk k holds records [k * chunk_size, (k + 1) * chunk_size). A chunk is written (atomically,
by PartStore) once all its vectors are back, so an interrupted run loses at most the chunks in
progress, and the next run embeds only the chunks that are missing.
"""

from __future__ import annotations

import base64
import math
import mimetypes
import re
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.bulk.engines import Engine
from gateway.bulk.output import write_output
from gateway.bulk.parts import JobMismatch, PartStore
from gateway.bulk.records import Record, RecordError, Records
from gateway.client import RemoteError
from gateway.errors import GatewayError
from gateway.media.refs import too_large

# The engine names an input by its place in the batch (input[35]): the user knows the record.
_BATCH_INDEX = re.compile(r"\binput\[(\d+)\]")
_API_HINT = "send truncate: true to cut it"


class BatchFailed(RuntimeError):
    """The engine refused a batch; the message names the record by its id, not its place."""


# Most data-URL text in one request of images: a server refuses bodies over its
# GATEWAY_MAX_BODY_BYTES (64 MiB by default), and `concurrency` requests are in flight at once.
# An image larger than this on its own still goes, alone.
MAX_REQUEST_IMAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class JobPlan:
    chunk_size: int = 1024
    batch_size: int = 64
    concurrency: int = 4
    max_request_bytes: int = MAX_REQUEST_IMAGE_BYTES  # images only


@dataclass
class JobSummary:
    total: int
    resumed: int  # records done by an earlier run
    embedded: int  # records embedded by this run
    blank: int
    seconds: float
    dimensions: int
    output: Path

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def image_data_url(path: str) -> str:
    return f"{_data_url_prefix(path)}{base64.b64encode(Path(path).read_bytes()).decode()}"


def _data_url_prefix(path: str) -> str:
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return f"data:{kind};base64,"


def check_image_sizes(records: Records, max_bytes: int) -> None:
    """Refuse an image file over the engine's limit by its size alone, before anything is read
    (a multi-GB file would be read and base64-encoded whole, only to be refused), in the words
    the engine would refuse it with."""
    for record in records.items:
        try:
            size = Path(record.value).stat().st_size
        except OSError as exc:  # removed since the folder was listed, say
            raise RecordError(f"{record.value}: {exc.strerror}") from None
        if size > max_bytes:
            raise RecordError(f"record {record.id!r}: {too_large(max_bytes)}")


def image_data_url_size(path: str) -> int:
    """The length of `image_data_url(path)`, from the file's size (nothing is read)."""
    return len(_data_url_prefix(path)) + 4 * -(-Path(path).stat().st_size // 3)


def batches_of(
    rows: list[Record], batch_size: int, max_bytes: int | None = None,
    size: Callable[[Record], int] = lambda row: 0,
) -> list[list[Record]]:  # fmt: skip
    """Consecutive batches of at most `batch_size` rows and, when `max_bytes` is given, at
    most `max_bytes` of `size` (a row larger than that on its own makes a batch alone)."""
    if max_bytes is None:
        return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    batches: list[list[Record]] = []
    current: list[Record] = []
    held = 0
    for row in rows:
        weight = size(row)
        if current and (len(current) == batch_size or held + weight > max_bytes):
            batches.append(current)
            current, held = [], 0
        current.append(row)
        held += weight
    return [*batches, current] if current else batches


def run_job(
    records: Records,
    engine: Engine,
    parts: PartStore,
    output: Path,
    plan: JobPlan,
    *,
    started: Callable[[int, int], None] = lambda total, done: None,
    advanced: Callable[[int], None] = lambda count: None,
) -> JobSummary:
    """Embed what is missing, then write `output`; `advanced` is told of each batch done."""
    items = records.items
    chunks = math.ceil(len(items) / plan.chunk_size)
    done = {k for k in parts.done() if k < chunks}
    for k in sorted(done):  # a chunk is reused by index: it must hold the same records
        if parts.read_ids(k) != [r.id for r in _chunk(items, k, plan.chunk_size)]:
            raise JobMismatch(
                f"{parts.folder}: saved chunk {k} holds other records than the input has now "
                "(it changed since the interrupted run); use --restart to start over"
            )
    resumed = sum(len(_chunk(items, k, plan.chunk_size)) for k in done)
    started(len(items), resumed)
    began = time.perf_counter()
    prepare = image_data_url if records.images else (lambda value: value)

    def batches(rows: list[Record]) -> list[list[Record]]:
        if not records.images:
            return batches_of(rows, plan.batch_size)
        return batches_of(rows, plan.batch_size, plan.max_request_bytes,
                          lambda row: image_data_url_size(row.value))  # fmt: skip

    pool = ThreadPoolExecutor(plan.concurrency, thread_name_prefix="bulk")
    try:
        for k in range(chunks):
            if k in done:
                continue
            rows = _chunk(items, k, plan.chunk_size)
            vectors = _embed_chunk(batches(rows), engine, pool, prepare, advanced)
            parts.write(k, [r.id for r in rows], vectors)
    finally:
        # On Ctrl-C or an error, do not wait for batches whose chunk will not be saved.
        pool.shutdown(wait=False, cancel_futures=True)
    seconds = time.perf_counter() - began
    ids: list[str] = []
    matrices = []
    for k in range(chunks):
        chunk_ids, vectors = parts.read(k)
        ids.extend(chunk_ids)
        matrices.append(vectors)
    matrix = np.concatenate(matrices) if matrices else np.zeros((0, 0), dtype=np.float32)
    write_output(output, ids, matrix)
    parts.remove()
    return JobSummary(
        total=len(items),
        resumed=resumed,
        embedded=len(items) - resumed,
        blank=records.blank,
        seconds=seconds,
        dimensions=int(matrix.shape[1]) if matrix.ndim == 2 else 0,
        output=output,
    )


def _chunk(items: list[Record], index: int, size: int) -> list[Record]:
    return items[index * size : (index + 1) * size]


def _embed_chunk(
    batches: list[list[Record]],
    engine: Engine,
    pool: ThreadPoolExecutor,
    prepare: Callable[[str], str],
    advanced: Callable[[int], None],
) -> np.ndarray:
    def one(batch: list[Record]) -> np.ndarray:
        try:
            return engine.embed([prepare(r.value) for r in batch])
        except GatewayError as exc:
            raise BatchFailed(in_records(exc.message, batch)) from None
        except RemoteError as exc:
            raise BatchFailed(in_records(str(exc), batch)) from None

    futures: dict[Future[np.ndarray], int] = {pool.submit(one, b): i for i, b in enumerate(batches)}
    results: list[np.ndarray | None] = [None] * len(batches)
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = futures[future]
                results[index] = future.result()  # an engine error ends the job here
                advanced(len(batches[index]))
    finally:
        for future in pending:
            future.cancel()
    return np.concatenate([r for r in results if r is not None])


def in_records(message: str, batch: list[Record]) -> str:
    """An engine's error about `batch`, with input[i] as the record's id and the CLI's flag."""

    def record(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f"record {batch[index].id!r}" if index < len(batch) else match.group(0)

    return _BATCH_INDEX.sub(record, message).replace(_API_HINT, "pass --truncate to cut it")
