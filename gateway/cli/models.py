"""`gateway ls`, `ps`, `show`, `rm`: Ollama's model commands, on local files or a server."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.api.ollama_wire import capability_names
from gateway.catalog import Catalog, ModelInfo
from gateway.cli.common import (
    DEFAULT_URL,
    ApiKeyOption,
    ModelsDirOption,
    RegistryOption,
    ServerUrlOption,
    UrlOption,
    console,
    fail,
    human_ago,
    human_size,
    human_until,
    local_models,
    reported,
)
from gateway.client import Remote
from gateway.registry import Registry, tagged_name
from gateway.sources import LocalSource, ModelStore

NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="model name or alias")]


def _plain_table(*columns: str) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def _local(registry: Path | None, models_dir: Path | None) -> tuple[Registry, ModelStore, Catalog]:
    models, store = local_models(registry, models_dir)
    return models, store, Catalog(models, store)


@dataclass
class ShowView:
    """What `show` prints, from the registry or from a server's /api/show."""

    name: str
    facts: dict[str, Any]
    capabilities: list[str]
    license: str
    extra: dict[str, Any] = field(default_factory=dict)


def _view_of_info(info: ModelInfo, digest: str) -> ShowView:
    spec = info.spec
    facts = {
        "architecture": spec.family,
        "parameters": spec.parameter_size,
        "context length": info.context_length,
        "embedding length": info.embedding_length,
        "quantization": spec.quantization,
        "kind": spec.kind,
    }
    extra = {"sha256": digest, "source": spec.source or "(per file)", "size": human_size(info.size)}
    capabilities = capability_names(info.capabilities)
    return ShowView(info.name, facts, capabilities, spec.license or "", extra)


def _view_of_show(name: str, body: dict[str, Any]) -> ShowView:
    details = body.get("details", {})
    info = body.get("model_info", {})
    family = details.get("family", "")
    facts = {
        "architecture": info.get("general.architecture", family),
        "parameters": details.get("parameter_size"),
        "context length": info.get(f"{family}.context_length"),
        "embedding length": info.get(f"{family}.embedding_length"),
        "quantization": details.get("quantization_level"),
        "kind": info.get("gateway.kind"),
    }
    extra = {"sha256": info.get("gateway.sha256"), "batching": info.get("gateway.batching")}
    return ShowView(name, facts, body.get("capabilities", []), body.get("license", ""), extra)


def _print_show(view: ShowView) -> None:
    for title, rows in (
        ("Model", view.facts),
        ("Capabilities", {c: "" for c in view.capabilities}),
        ("Gateway", view.extra),
    ):
        console.print(f"  [bold]{title}[/bold]")
        table = _plain_table("", "")
        table.show_header = False
        for key, value in rows.items():
            if value is not None:
                table.add_row(f"    {key}", str(value))
        console.print(table)
        console.print()
    if view.license:
        console.print("  [bold]License[/bold]")
        console.print(f"    {view.license}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("ls")
    @reported
    def ls(
        url: UrlOption = None,
        api_key: ApiKeyOption = None,
        registry: RegistryOption = None,
        models_dir: ModelsDirOption = None,
        all_models: Annotated[
            bool, typer.Option("--all", "-a", help="also list registry models not pulled")
        ] = False,
    ) -> None:
        """List pulled models (NAME, ID, SIZE, MODIFIED), locally or on --url."""
        table = _plain_table("NAME", "ID", "SIZE", "MODIFIED")
        if url is not None:
            remote = Remote(url, api_key)
            for row in remote.rows("/api/tags", "name", "digest", "size", "modified_at"):
                modified = datetime.fromisoformat(row["modified_at"].replace("Z", "+00:00"))
                table.add_row(
                    row["name"], row["digest"][:12], human_size(row["size"]), human_ago(modified)
                )
        else:
            models, _, catalog = _local(registry, models_dir)
            for spec in models:
                info = catalog.info(spec)
                if info.present:
                    digest = catalog.digest(spec)[:12]
                    table.add_row(
                        info.name, digest, human_size(info.size), human_ago(info.modified_at)
                    )
                elif all_models:
                    table.add_row(info.name, "-", "-", "not pulled")
        console.print(table)

    @app.command("list", hidden=True)
    @reported
    def list_models(registry: RegistryOption = None, models_dir: ModelsDirOption = None) -> None:
        """Registry models, their kind and whether each is pulled (the pre-`ls` format)."""
        models, store, _ = _local(registry, models_dir)
        for spec in models:
            state = "pulled" if store.is_present(spec) else "not pulled"
            default = " (default)" if spec.name == models.default_model else ""
            print(f"{spec.name:32} {spec.kind:14} {state}{default}")

    @app.command("ps")
    @reported
    def ps(url: ServerUrlOption = DEFAULT_URL, api_key: ApiKeyOption = None) -> None:
        """Models loaded in a running gateway (NAME, ID, SIZE, PROCESSOR, UNTIL)."""
        table = _plain_table("NAME", "ID", "SIZE", "PROCESSOR", "UNTIL")
        for row in Remote(url, api_key).rows("/api/ps", "name", "digest", "size", "expires_at"):
            until = datetime.fromisoformat(row["expires_at"].replace("Z", "+00:00"))
            processor = "100% GPU" if row.get("size_vram") else "100% CPU"
            table.add_row(
                row["name"], row["digest"][:12], human_size(row["size"]), processor,
                human_until(until),
            )  # fmt: skip
        console.print(table)

    @app.command("show")
    @reported
    def show(
        name: NameArgument,
        url: UrlOption = None,
        api_key: ApiKeyOption = None,
        registry: RegistryOption = None,
        models_dir: ModelsDirOption = None,
    ) -> None:
        """A model's facts: architecture, sizes, context, capabilities, license."""
        if url is not None:
            remote = Remote(url, api_key)
            body = remote.fields(remote.post("/api/show", {"model": name}), "/api/show")
            _print_show(_view_of_show(tagged_name(name), body))
            return
        models, _, catalog = _local(registry, models_dir)
        info = catalog.info(models.resolve(name).spec)
        if not info.present:
            fail(f"model '{name}' not found, try pulling it first (gateway pull {name})")
        _print_show(_view_of_info(info, catalog.digest(info.spec)))

    @app.command("rm")
    @reported
    def rm(
        names: Annotated[list[str], typer.Argument(metavar="NAME...", help="models to remove")],
        url: UrlOption = None,
        api_key: ApiKeyOption = None,
        registry: RegistryOption = None,
        models_dir: ModelsDirOption = None,
    ) -> None:
        """Remove pulled models' files (through --url: DELETE /api/delete)."""
        if url is not None:
            remote = Remote(url, api_key)
            for name in names:
                remote.delete("/api/delete", {"model": name})
                console.print(f"deleted '{name}'")
            return
        models, store, _ = _local(registry, models_dir)
        specs = [models.resolve(name).spec for name in names]
        for name, spec in zip(names, specs, strict=True):
            if any(isinstance(store.source_of(spec, r), LocalSource) for r in spec.files.values()):
                fail(f"model '{name}' is served from a local folder; delete it there")
            if not store.delete(spec):
                fail(f"model '{name}' not found")
            console.print(f"deleted '{name}'")
