"""`gateway embed`: a file or folder to Parquet or .npy, with progress, resumable."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from gateway.bulk.engines import Engine, LocalEngine, RemoteEngine
from gateway.bulk.job import BatchFailed, JobPlan, JobSummary, check_image_sizes, run_job
from gateway.bulk.model_check import check_job_model, check_remote_images
from gateway.bulk.output import OutputError, check_output
from gateway.bulk.parts import JobMismatch, PartStore, job_identity
from gateway.bulk.records import RecordError, read_records
from gateway.cli.common import (
    ApiKeyOption,
    ModelsDirOption,
    RegistryOption,
    UrlOption,
    console,
    fail,
    human_size,
    local_settings,
    reported,
)
from gateway.client import Remote, RemoteError


def _check_model(model: str, images: bool, url: str | None, api_key: str | None,
                 registry: Path | None, models_dir: Path | None) -> None:  # fmt: skip
    """Before any chunk is kept: the model exists, is here, and embeds what the input holds."""
    if url is None:
        check_job_model(local_settings(registry, models_dir), model, images=images)
    elif images:
        check_remote_images(Remote(url, api_key).post("/api/show", {"model": model}), model)


def _image_limit(url: str | None, api_key: str | None,
                 registry: Path | None, models_dir: Path | None) -> int:  # fmt: skip
    """The largest image the engine takes: GATEWAY_IMAGE_MAX_BYTES here, or the server's (its
    /info shows it); a server that does not show it is assumed to take what this one would."""
    here = local_settings(registry, models_dir).image_max_bytes
    if url is None:
        return here
    try:
        info = Remote(url, api_key).get("/info")
    except RemoteError:
        return here
    settings = info.get("settings") if isinstance(info, dict) else None
    limit = settings.get("image_max_bytes") if isinstance(settings, dict) else None
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else here


def _print_summary(summary: JobSummary) -> None:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    resumed = f" ({summary.resumed:,} done by an earlier run)" if summary.resumed else ""
    table.add_row("inputs", f"{summary.total:,}{resumed}")
    table.add_row("embedded now", f"{summary.embedded:,} in {summary.seconds:.1f}s")
    table.add_row("throughput", f"{summary.rate:,.0f} inputs/s")
    if summary.blank:
        table.add_row("blank, skipped", f"{summary.blank:,}")
    table.add_row("dimensions", str(summary.dimensions))
    size = human_size(summary.output.stat().st_size)
    table.add_row("output", f"{summary.output} ({size})")
    console.print(table)


class EmbedProgress:
    """One bar: percent, inputs done of all, this run's inputs/s, elapsed, ETA."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("[bold]embedding[/bold]"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.bar.add_task("embed", total=None, rate="")
        self.embedded = 0
        self.began = time.perf_counter()

    def started(self, total: int, done: int) -> None:
        self.began = time.perf_counter()
        self.bar.update(self.task, total=total, completed=done)
        if done:
            console.print(f"resuming: {done:,} of {total:,} inputs already embedded")

    def advanced(self, count: int) -> None:
        self.embedded += count
        rate = self.embedded / max(time.perf_counter() - self.began, 1e-9)
        self.bar.update(self.task, advance=count, rate=f"{rate:,.0f} inputs/s")


def register(app: typer.Typer) -> None:
    @app.command("embed")
    @reported
    def embed(
        source: Annotated[
            Path,
            typer.Argument(
                metavar="INPUT",
                help="a .txt (one text a line), .jsonl, .csv/.tsv or .parquet file, "
                "or a folder of images",
            ),
        ],
        model: Annotated[str, typer.Option("--model", "-m", help="model to embed with")],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="where to write: .parquet or .npy")
        ],
        column: Annotated[
            str | None,
            typer.Option(help="the text column of JSONL, CSV or Parquet (default: text)"),
        ] = None,
        id_column: Annotated[
            str | None, typer.Option(help="a column of ids (default: the row number)")
        ] = None,
        url: UrlOption = None,
        api_key: ApiKeyOption = None,
        batch_size: Annotated[int, typer.Option(min=1, help="inputs per request")] = 64,
        concurrency: Annotated[int, typer.Option(min=1, help="requests in flight")] = 4,
        chunk_size: Annotated[
            int, typer.Option(min=1, help="inputs per saved chunk (the unit of resuming)")
        ] = 1024,
        truncate: Annotated[
            bool, typer.Option(help="cut texts longer than the model's context")
        ] = True,
        restart: Annotated[
            bool, typer.Option("--restart", help="discard an interrupted run's chunks")
        ] = False,
        registry: RegistryOption = None,
        models_dir: ModelsDirOption = None,
    ) -> None:
        """Embed every record of INPUT into a Parquet (id, vector) or .npy file.

        Runs the gateway's engine in this process, or sends requests to --url.

        Finished chunks are kept beside the output until the end: run the same command
        again after an interruption and it embeds only what is missing.
        """
        try:
            check_output(output)
            records = read_records(source, column=column, id_column=id_column)
            if not records.items:
                fail(f"{source}: nothing to embed ({records.blank} blank texts)")
            _check_model(model, records.images, url, api_key, registry, models_dir)
            if records.images:
                check_image_sizes(records, _image_limit(url, api_key, registry, models_dir))
            parts = PartStore(output)
            job = job_identity(source, records, model=model, column=column, id_column=id_column,
                               chunk_size=chunk_size, truncate=truncate)  # fmt: skip
            parts.open(job, restart=restart)
        except (OutputError, RecordError, JobMismatch) as exc:
            fail(str(exc))
        engine: Engine = (
            RemoteEngine(url, api_key, model, truncate=truncate)
            if url is not None
            else LocalEngine(local_settings(registry, models_dir), model, truncate=truncate)
        )
        progress = EmbedProgress()
        try:
            with progress.bar:
                summary = run_job(
                    records, engine, parts, output,
                    JobPlan(chunk_size=chunk_size, batch_size=batch_size, concurrency=concurrency),
                    started=progress.started, advanced=progress.advanced,
                )  # fmt: skip
        except KeyboardInterrupt:
            done = len(parts.done()) * chunk_size
            console.print(
                f"interrupted; about {min(done, len(records.items)):,} inputs are saved in "
                f"{parts.folder}: run the same command again to resume"
            )
            raise typer.Exit(130) from None
        except (BatchFailed, JobMismatch) as exc:
            fail(str(exc))
        finally:
            engine.close()
        _print_summary(summary)
