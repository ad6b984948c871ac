"""Fixtures of the lifecycle tests: a registry of three fake models, a ModelManager factory, and
the faked loads (tests/unit/lifecycle/support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway import manager as manager_module
from gateway.manager import ModelManager
from gateway.pulling import Puller
from gateway.registry import Registry
from gateway.settings import Settings
from gateway.sources import ModelStore
from tests.unit.lifecycle.support import FakeLoads
from tools.models import minilm_entry, write_registry


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> FakeLoads:
    fake = FakeLoads()
    monkeypatch.setattr(manager_module, "load_model", fake)
    return fake


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    entries = {}
    for name in ("alpha", "beta", "bad"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"onnx " + name.encode())
        (folder / "tokenizer.json").write_text("{}")
        entries[name] = minilm_entry(folder)
    return Registry.load(write_registry(tmp_path / "registry.yaml", entries))


@pytest.fixture
def build(registry: Registry, tmp_path: Path) -> Iterator[Callable[..., ModelManager]]:
    made: list[ModelManager] = []

    def make(**env: str) -> ModelManager:
        store = ModelStore(tmp_path / "models", registry.base_dir)
        settings = Settings.load({f"GATEWAY_{k.upper()}": v for k, v in env.items()})
        runtime = SimpleNamespace(wants_cuda=False)
        nvml = SimpleNamespace(memory=lambda: None)
        made.append(ModelManager(registry, store, runtime, settings, Puller(store), nvml))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for each in made:
        each.executor.shutdown(wait=False, cancel_futures=True)
