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

from gateway.core import Gateway
from gateway.distributed.cluster import start_local_or_join
from gateway.errors import GatewayError
from gateway.registry import Registry
from gateway.services.types import EmbedRequest
from gateway.settings import Settings

EMBEDDING_COLUMN = "embedding"
BLOCKS_PER_ACTOR = 4


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
            row = column.to_pylist().index(None)
            raise ValueError(f"column {self.job.text_column!r} is null in a row (at {row})")
        texts = column.to_pylist()
        parts = [
            self._embed(texts[start : start + self.max_inputs])
            for start in range(0, len(texts), self.max_inputs)
        ]
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


def read_corpus(source: str, blocks: int) -> Any:
    """A Ray Dataset of the source's rows, by the files' extension, in at least `blocks` blocks
    (a small corpus read as one block would keep all but one actor idle)."""
    suffixes = {p.suffix.lower() for p in _files_of(source)}
    if suffixes <= {".parquet"}:
        return ray.data.read_parquet(source, override_num_blocks=blocks)
    if suffixes <= {".jsonl", ".json", ".ndjson"}:
        return ray.data.read_json(source, override_num_blocks=blocks)
    raise ValueError(f"{source}: expected .parquet or .jsonl files, found {sorted(suffixes)}")


def _files_of(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
    elif path.exists():
        files = [path]
    else:
        files = [Path(p) for p in sorted(Path().glob(source))]
    if not files:
        raise ValueError(f"{source}: no input files")
    return files


def embed_corpus(job: CorpusJob, settings: Settings | None = None) -> CorpusReport:
    """Run `job` on the connected Ray cluster (ray.init first, or a local one is started)."""
    from ray.data import ActorPoolStrategy

    settings = actor_settings(settings or Settings.load(), job)
    Registry.load(settings.registry).resolve(job.model)  # an unknown name fails here, not in actors
    started = time.perf_counter()
    dataset = read_corpus(job.source, blocks=job.actors * BLOCKS_PER_ACTOR)
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
    embedded.write_parquet(job.destination)
    files = sorted(Path(job.destination).glob("*.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return CorpusReport(rows, time.perf_counter() - started, job.destination, len(files))


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
    parser.add_argument("--actors", type=int, default=2, help="actors, each with the model")
    parser.add_argument("--actor-cpus", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=256)
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
    )
    try:
        settings = Settings.load()
        Registry.load(settings.registry).resolve(job.model)  # fail before starting Ray
        start_local_or_join(args.address)
        report = embed_corpus(job, settings)
    except (ValueError, GatewayError) as exc:
        print(f"embed_corpus: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    print(report.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
