"""The server of the connection-bounds tests: a 3 s header timeout and a 2 s read timeout,
started once for the package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import NO_CACHE, bundled_registry_in
from tests.support.raw_http import HEADER_TIMEOUT
from tools.gateway_server import GatewayServer


@pytest.fixture(scope="package")
def bounded_server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = bundled_registry_in(tmp_path_factory.mktemp("bounds"))
    env = {**NO_CACHE, "GATEWAY_HEADER_TIMEOUT": f"{HEADER_TIMEOUT}s", "GATEWAY_READ_TIMEOUT": "2s"}
    with GatewayServer(registry=registry, env=env) as running:
        yield running
