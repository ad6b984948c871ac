"""Rerank through the real server: Cohere v1/v2 (the real `cohere` client), Jina, Infinity, TEI
and the n8n Ollama rerank node's `/api/rerank`, scored three ways.

- MaxSim of the tiny PyLate ColBERTs (BERT and ModernBERT settings) must equal PyLate's own
  `colbert_scores` within 1e-4 (`raw_scores: true`); `relevance_score` is MaxSim divided by
  the query's vector count, mapped into [0, 1] by (s + 1) / 2 (gateway/scoring.py).
- A plain embedder (all-MiniLM-L6-v2) reranks by the cosine of the vectors /v1/embeddings gives,
  answered as (cosine + 1) / 2 (raw_scores: the cosine).
- A cross-encoder (tiny random BERT, tools/cross_encoder.py) by sigmoid(logit), matching
  transformers.
- all-MiniLM-L6-v2's real token states served as ColBERT vectors rank the document written for
  each of 10 hand-written queries first, among all ten documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cohere
import httpx
import numpy as np
import pytest

from tests.support.models import PINNED_BATCHING
from tests.support.rerank_api import COLBERTS, CROSS, MINILM, PROXY, PROXY_PLAIN
from tools import cross_encoder as cross
from tools.colbert_models import DOCUMENTS, QUERIES, ColbertModel
from tools.cross_encoder import cross_encoder_dir, cross_encoder_entry
from tools.gateway_server import GatewayServer
from tools.late_api import colbert_entry, minilm_late_entry, reference_maxsim
from tools.models import minilm_entry, write_registry


@pytest.fixture(scope="package")
def cross_dir(default_model_dir: Path) -> Path:
    return cross_encoder_dir(default_model_dir / "tokenizer.json")


@pytest.fixture(scope="package")
def rerank_server(
    colberts: dict[str, ColbertModel],
    cross_dir: Path,
    default_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    entries = {
        MINILM: minilm_entry(default_model_dir),
        **{name: colbert_entry(colberts[arch], "graph") for name, arch in COLBERTS.items()},
        PROXY: minilm_late_entry(default_model_dir),
        PROXY_PLAIN: minilm_late_entry(
            default_model_dir, query_prefix="", document_prefix="", do_query_expansion=False
        ),
        CROSS: cross_encoder_entry(cross_dir, cross.MAX_TOKENS),
    }
    registry = write_registry(
        tmp_path_factory.mktemp("rerank") / "registry.yaml",
        entries,
        default_model=MINILM,
        default_rerank_model=PROXY,
    )
    # Batch counts are asserted below: the run overhead is pinned, not timed at load.
    env = {"GATEWAY_CACHE_BYTES": "0", **PINNED_BATCHING}
    with GatewayServer(registry=registry, env=env) as running:
        yield running


@pytest.fixture(scope="package")
def client(rerank_server: GatewayServer) -> Iterator[httpx.Client]:
    with rerank_server.client() as http:
        yield http


@pytest.fixture(scope="package")
def co(rerank_server: GatewayServer) -> cohere.Client:
    return cohere.Client(api_key="unused", base_url=rerank_server.url, timeout=120)


@pytest.fixture(scope="package")
def co2(rerank_server: GatewayServer) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="unused", base_url=rerank_server.url, timeout=120)


@pytest.fixture(scope="package")
def pylate_scores(colberts: dict[str, ColbertModel]) -> dict[str, np.ndarray]:
    """MaxSim of PyLate's own token vectors for every query-document combination."""
    return {
        name: np.array(
            [
                [
                    reference_maxsim(model.query_vectors(q), model.document_vectors(d))
                    for d in range(len(DOCUMENTS))
                ]
                for q in range(len(QUERIES))
            ]
        )
        for name, model in ((n, colberts[a]) for n, a in COLBERTS.items())
    }
