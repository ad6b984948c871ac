"""Served names and server settings shared by the test modules (tests/conftest.py's servers)."""

from __future__ import annotations

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
