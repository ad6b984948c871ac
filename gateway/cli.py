"""`gateway serve`, `gateway pull NAME`, `gateway list`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from gateway.pulling import Puller
from gateway.registry import Registry, RegistryError
from gateway.settings import Settings, SettingsError, describe_settings, settings_field_names
from gateway.sources import ModelStore, SourceError

log = logging.getLogger("gateway")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for flag, env, default, help_text in describe_settings():
        parser.add_argument(
            flag,
            dest=flag[2:].replace("-", "_"),
            default=None,
            metavar="VALUE",
            # argparse %-formats help text: a default such as "80%" must be escaped.
            help=f"{help_text} [env {env}; default {default}]".replace("%", "%%"),
        )


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in settings_field_names()
        if getattr(args, name, None) is not None
    }
    return Settings.load(overrides=overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="ONNX embedding gateway (Ollama and OpenAI compatible)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="start the HTTP server",
        description="Start the server. Every flag can also be set by its environment variable.",
    )
    _add_setting_flags(serve)
    pull = commands.add_parser("pull", help="fetch a registry model's files into the models dir")
    pull.add_argument("names", nargs="+", metavar="NAME")
    _add_setting_flags(pull)
    listing = commands.add_parser("list", help="list registry models and whether they are pulled")
    _add_setting_flags(listing)
    return parser


def serve(settings: Settings) -> None:
    import uvicorn

    from gateway.api.app import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # A lone embedding request can be large; keep-alive connections are reused by clients.
        timeout_keep_alive=30,
    )


def pull(settings: Settings, names: Sequence[str]) -> int:
    registry = Registry.load(settings.registry)
    puller = Puller(ModelStore(settings.models_dir, registry.base_dir))
    # Resolve every name first: a typo in the last one should not cost a download of the first.
    specs = [registry.resolve(name).spec for name in names]

    async def pull_all() -> None:
        for spec in specs:

            def report(
                status: str,
                digest: str | None,
                total: int | None,
                completed: int | None,
                name: str = spec.name,
            ) -> None:
                done = f" {completed}/{total} bytes" if total and completed is not None else ""
                print(f"{name}: {status}{done}", flush=True)

            await puller.pull(spec, report)

    asyncio.run(pull_all())
    return 0


def list_models(settings: Settings) -> int:
    registry = Registry.load(settings.registry)
    store = ModelStore(settings.models_dir, registry.base_dir)
    for spec in registry:
        state = "pulled" if store.is_present(spec) else "not pulled"
        default = " (default)" if spec.name == registry.default_model else ""
        print(f"{spec.name:32} {spec.kind:14} {state}{default}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings_from(args)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if args.command == "serve":
            Registry.load(settings.registry)  # fail fast, before binding the port
            serve(settings)
            return 0
        if args.command == "pull":
            return pull(settings, args.names)
        return list_models(settings)
    except (SettingsError, RegistryError, SourceError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a clean message for expected failures such as unknown names
        from gateway.errors import GatewayError

        if isinstance(exc, GatewayError):
            print(f"gateway: {exc.message}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
