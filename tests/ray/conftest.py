"""One local Ray instance for every test in tests/ray/ (its start costs ~6 s on two cores)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.models import MINILM_FP32, NO_CACHE, NOMIC
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, nomic_entry, write_registry

# Logical CPUs Ray may hand out: 2 model replicas at 0.5, the ingress at 0.25, Ray Data's
# actors at 0.5 each; the machine has 2 real cores either way.
RAY_CPUS = 3
# The fp32 files under two more names: five models for 2 replicas x 2 slots force evictions.
COPIES = ["minilm-copy", "minilm-copy-2"]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    import ray  # the test extra installs the `ray` extra: a missing one fails here

    from gateway.distributed.cluster import start_local_or_join

    start_local_or_join(
        None,
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def multi_model_registry(
    default_model_dir: Path,
    minilm_fp32_dir: Path,
    nomic_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The bundled all-minilm (int8), the fp32 export, the tiny NomicBert, and copies."""
    return write_registry(
        tmp_path_factory.mktemp("ray-registry") / "registry.yaml",
        {
            "all-minilm": minilm_entry(default_model_dir),
            MINILM_FP32: minilm_entry(minilm_fp32_dir, quantization="F32"),
            NOMIC: nomic_entry(nomic_dir),
            **{name: minilm_entry(minilm_fp32_dir, quantization="F32") for name in COPIES},
        },
        default_model="all-minilm",
    )


@pytest.fixture(scope="session")
def single_server(multi_model_registry: Path) -> Iterator[GatewayServer]:
    """The single-process gateway on the same registry: the vectors to match."""
    with GatewayServer(registry=multi_model_registry, env=NO_CACHE) as running:
        yield running
