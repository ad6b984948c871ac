"""What clients are told about broken model files, and what an interrupted pull leaves behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from gateway.errors import ModelLoadError, ModelNotFound
from gateway.load_errors import load_error, missing_files_error
from gateway.registry import Registry
from gateway.sources import ModelStore
from tools.models import minilm_entry, write_registry


@pytest.fixture
def store_and_registry(tmp_path: Path) -> tuple[ModelStore, Registry]:
    folder = tmp_path / "local-model"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "tokenizer.json").write_text("{}")
    hub_entry = {
        **minilm_entry(folder),
        "source": "hf://org/repo@0123456789abcdef0123456789abcdef01234567",
        "files": {"model": "onnx/model.onnx", "tokenizer": "tokenizer.json"},
    }
    path = write_registry(
        tmp_path / "registry.yaml", {"local": minilm_entry(folder), "pulled": hub_entry}
    )
    registry = Registry.load(path)
    return ModelStore(tmp_path / "models", registry.base_dir), registry


def test_missing_local_file_names_model_file_and_folder(
    store_and_registry: tuple[ModelStore, Registry],
) -> None:
    store, registry = store_and_registry
    spec = registry.resolve("local").spec
    assert (
        "try pulling it first" in missing_files_error(spec, store, ["model", "tokenizer"]).message
    )
    error = missing_files_error(spec, store, ["model"])
    assert isinstance(error, ModelNotFound) and error.status_code == 404
    assert "model 'local'" in error.message and "model.onnx missing" in error.message
    assert "local-model" in error.message and "pull" not in error.message
    assert "/" not in error.message  # the folder's name, not where it lives


def test_missing_pulled_files_say_pull(store_and_registry: tuple[ModelStore, Registry]) -> None:
    store, registry = store_and_registry
    spec = registry.resolve("pulled").spec
    assert (
        "try pulling it first" in missing_files_error(spec, store, ["model", "tokenizer"]).message
    )
    partly = missing_files_error(spec, store, ["tokenizer"]).message
    assert "model 'pulled'" in partly and "tokenizer.json missing, pull it again" in partly


@pytest.mark.parametrize(
    ("exc", "needles"),
    [
        (
            ModelLoadError("cannot load model.onnx: Protobuf parsing failed"),
            ["model.onnx", "Protobuf"],
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/m/model.onnx"),
            ["No such file or directory (model.onnx)"],
        ),
        (RuntimeError("odd"), ["RuntimeError: odd"]),
    ],
)
def test_load_errors_name_the_model_and_cause(exc: Exception, needles: list[str]) -> None:
    error = load_error("victim", exc)
    assert isinstance(error, ModelLoadError)
    assert error.message.startswith("model 'victim' could not be loaded: ")
    for needle in needles:
        assert needle in error.message


def test_an_encoder_error_that_names_the_model_names_it_once() -> None:
    error = load_error("victim", ModelLoadError("model victim: the graph has no input_ids input"))
    assert error.message == "model 'victim' could not be loaded: the graph has no input_ids input"


def test_a_new_pull_removes_what_a_killed_one_left(
    store_and_registry: tuple[ModelStore, Registry],
) -> None:
    store, registry = store_and_registry
    spec = registry.resolve("local").spec
    folder = store.model_dir(spec)
    (folder / ".hf-download-abc123").mkdir(parents=True)
    (folder / ".hf-download-abc123" / "model.onnx").write_bytes(b"half")
    (folder / ".model.onnx.1a2b3c4d.partial").write_bytes(b"half")
    (folder / "keep.txt").write_text("not ours to remove")
    store.pull(spec)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
