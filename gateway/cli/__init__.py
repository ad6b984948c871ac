"""`gateway`: the server, Ollama-like model commands, and bulk embedding.

One module per command group; each registers its commands on the Typer app. `serve`'s flags
are generated from Settings, so only its help lists them (in plain text: one line a flag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

from gateway.cli import embed, models, pull, serve

app = typer.Typer(
    name="gateway",
    help="ONNX embedding gateway (Ollama and OpenAI compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve.register(app)
pull.register(app)
models.register(app)
embed.register(app)


def command() -> Any:
    group: Any = typer.main.get_command(app)
    # Forty flags read better as click's plain list than as rich's table (and stay greppable).
    group.commands["serve"].rich_markup_mode = None
    return group


def main(argv: Sequence[str] | None = None) -> int:
    try:
        command().main(
            args=list(argv) if argv is not None else None, prog_name="gateway", standalone_mode=True
        )
    except SystemExit as done:
        if done.code is None:
            return 0
        return done.code if isinstance(done.code, int) else 1
    return 0
