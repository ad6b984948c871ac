"""What every command shares: options, error reporting, local settings, human-readable sizes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from gateway.client import RemoteError
from gateway.errors import GatewayError
from gateway.registry import Registry, RegistryError
from gateway.settings import Settings, SettingsError
from gateway.sources import ModelStore, SourceError

P = ParamSpec("P")
R = TypeVar("R")

console = Console()

DEFAULT_URL = "http://127.0.0.1:11434"

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="GATEWAY_URL",
        help="a running gateway (e.g. http://127.0.0.1:11434); without it, work on local files",
        show_default=False,
    ),
]
ServerUrlOption = Annotated[
    str, typer.Option("--url", envvar="GATEWAY_URL", help="the running gateway to ask")
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="GATEWAY_API_KEY", help="API key for --url", show_default=False
    ),
]
RegistryOption = Annotated[
    Path | None,
    typer.Option(
        "--registry", help="registry.yaml to use (env GATEWAY_REGISTRY)", show_default=False
    ),
]
ModelsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--models-dir", help="where pulled files live (env GATEWAY_MODELS_DIR)", show_default=False
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"gateway: {message}", file=sys.stderr, flush=True)  # one line, never wrapped
    raise typer.Exit(code)


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Expected failures end with one `gateway: ...` line and exit code 2, not a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (SettingsError, RegistryError, SourceError, RemoteError) as exc:
            fail(str(exc))
        except GatewayError as exc:
            fail(exc.message)

    return run


def local_settings(registry: Path | None = None, models_dir: Path | None = None) -> Settings:
    """Settings from the environment, with this command's own flags on top."""
    overrides = {}
    if registry is not None:
        overrides["registry"] = str(registry)
    if models_dir is not None:
        overrides["models_dir"] = str(models_dir)
    return Settings.load(overrides=overrides)


def local_models(
    registry: Path | None = None, models_dir: Path | None = None
) -> tuple[Registry, ModelStore]:
    """The registry and the store of pulled files that this command's local flags select."""
    settings = local_settings(registry, models_dir)
    models = Registry.load(settings.registry)
    return models, ModelStore(settings.models_dir, models.base_dir)


def human_size(size: int) -> str:
    """Decimal units, as `ollama ls` prints them."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_ago(when: datetime) -> str:
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def human_until(when: datetime) -> str:
    seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds > 10 * 365 * 86400:
        return "Forever"
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count > 1 else ''} from now"
    return "now"


def is_terminal() -> bool:
    return sys.stdout.isatty()
