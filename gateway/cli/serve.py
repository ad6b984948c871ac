"""`gateway serve`: every setting is a flag here (and only here), generated from Settings."""

from __future__ import annotations

import inspect
import socket
from typing import Any

import typer

from gateway.logs import configure_logging
from gateway.registry import Registry
from gateway.settings import Settings, SettingsError, describe_settings, settings_field_names

HELP = "Start the HTTP server. Every flag can also be set by its environment variable."


def run(settings: Settings) -> None:
    """Serve with bounded connections and a graceful shutdown (gateway.server)."""
    from gateway.server import run_server

    run_server(settings)


def check_bind_host(host: str, origin: str) -> None:
    """A host name that does not resolve fails here, named, not in uvicorn after start-up."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"{origin}: cannot resolve {host!r} ({reason})") from None


def serve(**flags: str | bool | None) -> None:
    from gateway.cli.common import reported

    @reported
    def start() -> None:
        overrides = {
            name: str(value)
            for name in settings_field_names()
            if (value := flags.get(name)) is not None
        }
        settings = Settings.load(overrides=overrides)
        check_bind_host(settings.host, "--host" if "host" in overrides else "GATEWAY_HOST")
        configure_logging(settings.log_level, settings.log_format, settings.api_keys)
        Registry.load(settings.registry)  # fail fast, before binding the port
        if flags.get("ray"):
            from gateway.distributed.cli import serve_on_ray

            raise typer.Exit(serve_on_ray(settings))
        run(settings)

    start()


def _flag_parameters() -> list[inspect.Parameter]:
    """One `--flag VALUE` option per setting; Typer reads them from the signature."""
    parameters = []
    for flag, env, default, help_text in describe_settings():
        option: Any = typer.Option(
            None,
            flag,
            metavar="VALUE",
            show_default=False,
            help=f"{help_text} [env {env}; default {default}]",
        )
        name = flag[2:].replace("-", "_")
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=str | None
            )
        )
    ray: Any = typer.Option(
        False,
        "--ray",
        help="serve on Ray Serve: replicas routed by model (extra `ray`; GATEWAY_RAY_* options, "
        "see docs/scaling.md)",
    )
    parameters.append(
        inspect.Parameter("ray", inspect.Parameter.KEYWORD_ONLY, default=ray, annotation=bool)
    )
    return parameters


def register(app: typer.Typer) -> None:
    parameters = _flag_parameters()
    serve.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    serve.__annotations__ = {p.name: p.annotation for p in parameters}
    app.command("serve", help=HELP, short_help="start the HTTP server")(serve)
