"""Fixtures only the API layer uses; the shared servers are in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import NO_CACHE, PINNED_BATCHING, bundled_registry_in
from tools.gateway_server import GatewayServer


@pytest.fixture(scope="session")
def uncached_server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """The repository's registry.yaml, like `server`, with the embedding cache off and the
    batcher's run overhead pinned by setting."""
    registry = bundled_registry_in(tmp_path_factory.mktemp("uncached"))
    with GatewayServer(registry=registry, env={**NO_CACHE, **PINNED_BATCHING}) as running:
        yield running
