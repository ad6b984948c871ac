"""bench.lean_load against the real gateway: answers in input order, refusals raised, not kept."""

from __future__ import annotations

import numpy as np
import pytest

from bench.lean_load import run_lean_load
from bench.load import OLLAMA, LoadError, run_load
from tools.gateway_server import GatewayServer

TEXTS = [f"sentence number {i} about {word}" for i, word in enumerate("abcdefghij" * 2)]


def test_vectors_match_the_aiohttp_client_in_input_order(server: GatewayServer) -> None:
    lean = run_lean_load(server.url, OLLAMA, "all-minilm", TEXTS, clients=4, per_request=3)
    reference = run_load(server.url, OLLAMA, "all-minilm", TEXTS, clients=1, per_request=1)
    assert lean.requests == 7 and len(lean.latencies_s) == 7
    assert lean.vectors.shape == reference.vectors.shape == (len(TEXTS), 384)
    cos = np.sum(lean.vectors * reference.vectors, axis=1) / (
        np.linalg.norm(lean.vectors, axis=1) * np.linalg.norm(reference.vectors, axis=1)
    )
    assert cos.min() > 0.9999
    assert lean.server_tokens == reference.server_tokens > 0


def test_a_refused_request_raises_with_the_servers_answer(server: GatewayServer) -> None:
    with pytest.raises(LoadError, match="404"):
        run_lean_load(server.url, OLLAMA, "no-such-model", TEXTS[:2], clients=2, per_request=1)
