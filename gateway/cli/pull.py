"""`gateway pull`: fetch models with a progress bar per file, locally or through a server."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from gateway.cli.common import (
    ApiKeyOption,
    ModelsDirOption,
    RegistryOption,
    UrlOption,
    console,
    local_models,
    reported,
)
from gateway.client import Remote
from gateway.pulling import Puller


class PullProgress:
    """Renders Ollama-shaped pull events: a bar per file (bytes, rate, ETA), a line per stage.

    Events without a byte count ("pulling manifest", "success") print once as a line; events
    with one update the bar of their status, which names the file being fetched. When the
    output is not a terminal (a pipe, a log), each finished file is one plain line instead.
    """

    def __init__(self, console: Console, name: str = "") -> None:
        self.console = console
        self.prefix = f"{name}: " if name and not console.is_terminal else ""
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.bars: dict[str, TaskID] = {}
        self.lines: list[str] = []

    def __enter__(self) -> PullProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def _line(self, text: str) -> None:
        if not self.lines or self.lines[-1] != text:
            self.lines.append(text)
            self.console.print(self.prefix + text, markup=False, highlight=False)

    def __call__(
        self, status: str, digest: str | None, total: int | None, completed: int | None
    ) -> None:
        if total is None or completed is None:
            self._line(status)
            return
        label = f"{status} {digest[7:19]}" if digest else status
        if not self.console.is_terminal:
            if completed >= total:
                self._line(f"{status} {completed}/{total} bytes")
            return
        bar = self.bars.get(status)
        if bar is None:
            bar = self.bars[status] = self.progress.add_task(label, total=total)
        self.progress.update(bar, description=label, total=total, completed=completed)


def register(app: typer.Typer) -> None:
    @app.command("pull")
    @reported
    def pull(
        names: Annotated[list[str], typer.Argument(metavar="NAME...", help="registry models")],
        url: UrlOption = None,
        api_key: ApiKeyOption = None,
        registry: RegistryOption = None,
        models_dir: ModelsDirOption = None,
    ) -> None:
        """Fetch models' files, with a progress bar per file (through --url: POST /api/pull)."""
        if url is not None:
            remote = Remote(url, api_key)
            for name in names:
                with PullProgress(console, name) as show:
                    for event in remote.stream("/api/pull", {"model": name, "stream": True}):
                        show(
                            str(event.get("status", "")),
                            event.get("digest"),
                            event.get("total"),
                            event.get("completed"),
                        )
            return
        models, store = local_models(registry, models_dir)
        puller = Puller(store)
        # Resolve every name first: a typo in the last should not cost a download of the first.
        specs = [models.resolve(name).spec for name in names]

        async def pull_all() -> None:
            for spec in specs:
                if console.is_terminal:
                    console.print(f"[bold]{spec.name}[/bold]")
                with PullProgress(console, spec.name) as show:
                    await puller.pull(spec, show)

        asyncio.run(pull_all())
