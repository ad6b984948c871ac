"""Deleting a model removes its own files only, never under a pull or a load, and a models
folder that cannot be changed is a clear error (no server: the store and ModelAdmin alone)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from gateway.errors import InsufficientStorage
from gateway.model_lock import model_lock
from gateway.registry import Registry
from gateway.services.models import InUse, ModelAdmin
from gateway.sources import FileRecord, Manifest, ModelStore, PullInProgress, StorageError
from tools.models import write_registry

SOURCE = "hf://acme/minilm@main"


def entry() -> dict[str, Any]:
    files = {"model": "onnx/model.onnx", "tokenizer": "tokenizer.json"}
    return {"kind": "text", "source": SOURCE, "files": files, "dim": 4}


@pytest.fixture
def pulled(tmp_path: Path) -> tuple[Registry, ModelStore]:
    """`acme` and `acme/mini`, whose folder is inside acme's, both pulled."""
    registry = Registry.load(
        write_registry(tmp_path / "registry.yaml", {"acme": entry(), "acme/mini": entry()})
    )
    store = ModelStore(tmp_path / "models", tmp_path)
    for spec in registry:
        records = {}
        for role, path in store.paths(spec).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(spec.name)
            records[role] = FileRecord(str(path), path.stat().st_size, "0" * 64, SOURCE)
        manifest = Manifest(files=records, pulled_at=0.0)
        (store.model_dir(spec) / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    return registry, store


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_delete_leaves_a_model_nested_in_its_folder(pulled: tuple[Registry, ModelStore]) -> None:
    registry, store = pulled
    acme, mini = registry.models["acme"], registry.models["acme/mini"]
    leftover = store.model_dir(acme) / ".model.onnx.partial"
    leftover.write_text("half")
    assert store.delete(acme)
    assert store.is_present(mini) and not store.is_present(acme)
    assert files_under(store.models_dir / "acme") == [
        "mini/manifest.json",
        "mini/model.onnx",
        "mini/tokenizer.json",
    ]
    assert not store.delete(acme)  # nothing of its own is left
    assert store.delete(mini)
    assert not (store.models_dir / "acme").exists()  # folders left empty go too
    assert store.models_dir.is_dir()


def test_delete_keeps_files_it_does_not_own(pulled: tuple[Registry, ModelStore]) -> None:
    registry, store = pulled
    mini = registry.models["acme/mini"]
    notes = store.model_dir(mini) / "notes.txt"
    notes.write_text("the operator's")
    assert store.delete(mini)
    assert notes.exists() and not store.is_present(mini)


def test_delete_during_another_process_pull_is_refused(
    pulled: tuple[Registry, ModelStore],
) -> None:
    registry, store = pulled
    mini = registry.models["acme/mini"]
    with model_lock(store.models_dir, mini.name), pytest.raises(PullInProgress):
        store.delete(mini)
    assert store.is_present(mini)


def test_a_models_folder_that_cannot_be_changed_is_a_storage_error(
    pulled: tuple[Registry, ModelStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, store = pulled

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(StorageError) as caught:
        store.delete(registry.models["acme/mini"])
    assert str(caught.value).startswith(f"models folder {store.models_dir}: Permission denied (")


def admin(registry: Registry, store: ModelStore, *, pulling: bool, loading: bool) -> ModelAdmin:
    puller = SimpleNamespace(is_pulling=lambda name: pulling)
    models = SimpleNamespace(is_loading=lambda name: loading, get=lambda name: None)
    return ModelAdmin(registry, store, None, models, puller, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pulling", "loading", "message"),
    [
        (True, True, "model 'acme' is being pulled; try again when the pull finishes"),
        (False, True, "model 'acme' is being loaded; try again when the load finishes"),
    ],
)
def test_delete_during_a_pull_or_a_load_is_in_use(
    pulled: tuple[Registry, ModelStore], pulling: bool, loading: bool, message: str
) -> None:
    registry, store = pulled
    with pytest.raises(InUse) as caught:
        asyncio.run(admin(registry, store, pulling=pulling, loading=loading).delete("acme"))
    assert caught.value.status_code == 409
    assert caught.value.message == message
    assert store.is_present(registry.models["acme"])


def test_delete_failing_on_the_models_folder_is_a_507(
    pulled: tuple[Registry, ModelStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, store = pulled
    monkeypatch.setattr(Path, "rmdir", lambda self: None)

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(InsufficientStorage) as caught:
        asyncio.run(admin(registry, store, pulling=False, loading=False).delete("acme"))
    assert caught.value.message.startswith(
        "model 'acme' could not be deleted: models folder models: Permission denied (acme/"
    )
