"""Served names, server settings and the registry copy shared by the test modules (and by
tests/conftest.py's servers)."""

from __future__ import annotations

from pathlib import Path

from tools.paths import REPO

# Served names of the reference models in the shared test servers (tests/conftest.py).
MINILM_FP32 = "all-minilm-fp32"
NOMIC = "nomic-embed-text"
# Servers that exist for numerical comparisons run without the embedding cache, so that every
# vector they return was computed for that request (a cached one would hide batching effects).
NO_CACHE = {"GATEWAY_CACHE_BYTES": "0"}
# Servers whose tests count inference runs pin the batcher's run overhead instead of timing it at
# load: on a busy machine the timing differs, and so would where batches are cut (issue 17).
PINNED_OVERHEAD_TOKENS = 16.0
PINNED_BATCHING = {"GATEWAY_RUN_OVERHEAD_TOKENS": str(PINNED_OVERHEAD_TOKENS)}


def bundled_registry_in(folder: Path) -> Path:
    """A copy of the bundled registry.yaml in `folder`, for a server a test starts: the
    server may write beside its registry, and tests must not touch the repository's."""
    registry = folder / "registry.yaml"
    registry.write_text((REPO / "registry.yaml").read_text())
    return registry
