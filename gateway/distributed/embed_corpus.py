"""Embed a corpus on Ray Data: Parquet or JSONL in, Parquet out, the gateway's engine inside.

    python -m gateway.distributed.embed_corpus corpus.parquet out/ --model all-minilm --actors 4

Rows are read in blocks and handed in batches to a fixed pool of actors; each actor loads the
model once and embeds through the gateway's own EmbeddingService, so batches are cut by the
same token budget and every vector equals what `/api/embed` returns for that text. The output
keeps the input's columns and adds `embedding` (fixed-size list of float32).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import ray

from gateway.bulk.model_check import check_job_model
from gateway.core import Gateway
from gateway.distributed.cli import last_line
from gateway.distributed.cluster import start_local_or_join
from gateway.distributed.corpus_files import (
    CorpusFiles,
    check_destination,
    corpus_files,
    discard,
    publish,
    staging_folder,
)
from gateway.errors import GatewayError
from gateway.services.types import EmbedRequest
from gateway.settings import Settings

EMBEDDING_COLUMN = "embedding"
BLOCKS_PER_ACTOR = 4


class CorpusDataError(ValueError):
    """A row the job cannot embed. Raised in an actor, it reaches the driver only as text in
    Ray's wrapper (Ray Data does not keep the cause), where `main` finds it by this name."""


_DATA_ERROR = re.compile(rf"{CorpusDataError.__name__}: (.+)")


@dataclass(frozen=True)
class CorpusJob:
    source: str  # a file, folder or glob of .parquet, or of .jsonl/.json (one object a line)
    destination: str  # a folder; Parquet files are written into it
    model: str
    text_column: str = "text"
    task: str | None = None
    dimensions: int | None = None
    actors: int = 2  # the pool: one loaded model per actor
    actor_cpus: float = 1.0
    batch_size: int = 256  # rows handed to an actor at once; the engine cuts its own runs
    overwrite: bool = False  # replace an earlier run's Parquet files in `destination`


@dataclass(frozen=True)
class CorpusReport:
    rows: int
    seconds: float
    destination: str
    files: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.inf

    def summary(self) -> str:
        return (
            f"embedded {self.rows} texts in {self.seconds:.1f}s "
            f"({self.rows_per_second:.0f} texts/s) into {self.files} file(s) under "
            f"{self.destination}"
        )


class CorpusEmbedder:
    """One per Ray Data actor: the gateway's engine with the job's model loaded."""

    def __init__(self, settings: Settings, job: CorpusJob) -> None:
        self.job = job
        self.max_inputs = settings.max_inputs
        self.loop = asyncio.new_event_loop()
        self.gateway = Gateway.build(settings)
        self._embed(["warm-up: load the model before the first batch"])

    def __call__(self, batch: pa.Table) -> pa.Table:
        column = batch.column(self.job.text_column)
        if column.null_count:
            raise CorpusDataError(null_text(batch, self.job.text_column))
        texts = column.to_pylist()
        try:
            parts = [
                self._embed(texts[start : start + self.max_inputs])
                for start in range(0, len(texts), self.max_inputs)
            ]
        except GatewayError as exc:
            raise CorpusDataError(exc.message) from None
        vectors = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        width = vectors.shape[1]
        flat = pa.array(vectors.astype(np.float32, copy=False).ravel(), type=pa.float32())
        return batch.append_column(EMBEDDING_COLUMN, pa.FixedSizeListArray.from_arrays(flat, width))

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        request = EmbedRequest(
            self.job.model, list(texts), self.job.task, dimensions=self.job.dimensions
        )
        result = self.loop.run_until_complete(self.gateway.services.embedding.embed(request))
        return result.vectors

    def __del__(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.gateway.close())
            self.loop.close()


def actor_settings(settings: Settings, job: CorpusJob) -> Settings:
    """Each actor: its share of cores, its one model kept, no cache (corpus texts rarely
    repeat), absolute paths (actors may start elsewhere)."""
    return dataclasses.replace(
        settings,
        registry=Path(settings.registry).resolve(),
        models_dir=Path(settings.models_dir).resolve(),
        threads=settings.threads or max(1, math.ceil(job.actor_cpus)),
        keep_alive=math.inf,
        cache_bytes=0,
    )


def null_text(batch: pa.Table, column: str) -> str:
    """Which row has no text, by its other columns (an id), since a batch knows no position."""
    row = batch.slice(batch.column(column).to_pylist().index(None), 1).to_pylist()[0]
    named = ", ".join(f"{k}={str(v)[:80]}" for k, v in row.items() if k != column)
    return f"column {column!r} is null in the row with {named or 'no other column'}"


def check_job(job: CorpusJob, settings: Settings) -> CorpusFiles:
    """Everything the driver can check before Ray starts: input files, destination, model."""
    files = corpus_files(job.source)
    check_destination(job.destination, overwrite=job.overwrite)
    check_job_model(settings, job.model, task=job.task, dimensions=job.dimensions)
    return files


def read_corpus(files: CorpusFiles, blocks: int) -> Any:
    """A Ray Dataset of exactly these files' rows, in at least `blocks` blocks (a small corpus
    read as one block would keep all but one actor idle). No extension filter: they are checked."""
    read = ray.data.read_parquet if files.format == "parquet" else ray.data.read_json
    return read(files.paths, override_num_blocks=blocks, file_extensions=None)


def embed_corpus(job: CorpusJob, settings: Settings | None = None) -> CorpusReport:
    """Run `job` on the connected Ray cluster (ray.init first, or a local one is started)."""
    from ray.data import ActorPoolStrategy, SaveMode

    settings = actor_settings(settings or Settings.load(), job)
    files = check_job(job, settings)  # bad input fails here, not in the actors
    started = time.perf_counter()
    dataset = read_corpus(files, blocks=job.actors * BLOCKS_PER_ACTOR)
    if job.text_column not in dataset.schema().names:
        raise ValueError(f"{job.source}: no column {job.text_column!r} in {dataset.schema()}")
    # Blocks are sized by bytes, and a corpus's text is small for the compute it takes: left
    # alone, a few thousand rows arrive as one block and one actor embeds them all. A block per
    # batch (streamed, not shuffled) spreads them over the pool.
    dataset = dataset.repartition(target_num_rows_per_block=job.batch_size)
    embedded = dataset.map_batches(
        CorpusEmbedder,
        fn_constructor_args=(settings, job),
        batch_size=job.batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=job.actors),
        num_cpus=job.actor_cpus,
    )
    # Into a new staging folder (APPEND: Ray's ERROR mode refuses even an empty one, and its
    # OVERWRITE empties the destination before the first row), published once all is written.
    staging = staging_folder(job.destination)
    try:
        embedded.write_parquet(str(staging), mode=SaveMode.APPEND)
    except BaseException:
        discard(staging)
        raise
    written = publish(staging, job.destination)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in written)
    return CorpusReport(rows, time.perf_counter() - started, job.destination, len(written))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.distributed.embed_corpus",
        description="Embed a Parquet/JSONL corpus on Ray Data into Parquet (column "
        f"{EMBEDDING_COLUMN!r}). Gateway settings come from GATEWAY_* variables.",
    )
    parser.add_argument("source", help="file, folder or glob of .parquet or .jsonl")
    parser.add_argument("destination", help="output folder")
    parser.add_argument("--model", required=True)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--task", default=None)
    parser.add_argument("--dimensions", type=int, default=None)
    parser.add_argument(
        "--actors", type=_positive(int), default=2, help="actors, each with the model"
    )
    parser.add_argument("--actor-cpus", type=_positive(float), default=1.0)
    parser.add_argument("--batch-size", type=_positive(int), default=256)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run's Parquet files (once this run's are all written)",
    )
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: local)")
    args = parser.parse_args(argv)
    job = CorpusJob(
        source=args.source,
        destination=args.destination,
        model=args.model,
        text_column=args.text_column,
        task=args.task,
        dimensions=args.dimensions,
        actors=args.actors,
        actor_cpus=args.actor_cpus,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    try:
        settings = Settings.load()
        check_job(job, actor_settings(settings, job))  # fail before starting Ray
        if not ray.is_initialized():
            start_local_or_join(args.address)
        report = embed_corpus(job, settings)
    except ray.exceptions.RayError as exc:  # before ValueError: Ray's wrappers may be both
        found = _DATA_ERROR.search(str(exc))
        ours = _cause(exc)
        message = found.group(1) if found else _message(ours or exc)
        print(f"embed_corpus: {message}", file=sys.stderr)
        return 2 if found or ours is not None else 1
    except ConnectionError as exc:  # --address: nothing answers there (cluster.py), or none found
        print(f"embed_corpus: {last_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, GatewayError) as exc:
        print(f"embed_corpus: {_message(exc)}", file=sys.stderr)
        return 2
    print(report.summary(), flush=True)
    return 0


def _cause(exc: BaseException) -> BaseException | None:
    """The job's own error inside Ray's wrappers (RayTaskError.cause, `raise ... from`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, GatewayError) or (
            isinstance(current, ValueError) and not isinstance(current, ray.exceptions.RayError)
        ):
            return current
        current = getattr(current, "cause", None) or current.__cause__
    return None


def _message(exc: BaseException) -> str:
    """One line: a GatewayError's message, else the last line of the text (Ray's own errors
    end with their reason after a traceback)."""
    return exc.message if isinstance(exc, GatewayError) else last_line(exc)


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(raw: str) -> int | float:
        value = kind(raw)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {raw}")
        return value

    return parse


if __name__ == "__main__":
    sys.exit(main())
