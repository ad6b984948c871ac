"""registry.yaml's cross-encoder entry serves a model of the real
one's shape: a random-weight BERT with ms-marco-MiniLM-L6-v2's config, exported to ONNX and
served with the entry's own settings, scored as transformers scores it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.support.api import assert_openai_error
from tools.cross_encoder import (
    MINILM_L6_CONFIG,
    cross_encoder_dir,
    transformers_logits,
)
from tools.gateway_server import GatewayServer
from tools.models import write_registry
from tools.paths import REPO

CROSS = "ms-marco-minilm"
QUERY = "how do tides work?"
DOCUMENTS = [
    "Tides are caused by the gravitational pull of the moon and the sun on the oceans.",
    "The stock market fell sharply on Monday.",
    "A recipe for apple pie with cinnamon.",
    "Ocean tides rise and fall twice a day. " * 60,  # past 512 tokens with the query
]


@pytest.fixture(scope="module")
def stand_in(default_model_dir: Path) -> Path:
    return cross_encoder_dir(
        default_model_dir / "tokenizer.json", MINILM_L6_CONFIG, name="ms-marco-minilm-l6-shape"
    )


@pytest.fixture(scope="module")
def server(stand_in: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """The registry's own entry, with only where the files come from changed."""
    entry: dict[str, Any] = yaml.safe_load((REPO / "registry.yaml").read_text())["models"][CROSS]
    entry = {**entry, "source": str(stand_in)}
    entry["files"] = {"model": "model.onnx", "tokenizer": "tokenizer.json"}
    registry = write_registry(tmp_path_factory.mktemp("cross") / "registry.yaml", {CROSS: entry})
    with GatewayServer(registry=registry) as running:
        yield running


def test_the_entry_scores_as_transformers_does(server: GatewayServer, stand_in: Path) -> None:
    logits = transformers_logits(stand_in, QUERY, DOCUMENTS, 512)
    assert np.ptp(logits) > 0.1, "the pairs are told apart"
    # One chunk per document: transformers cuts the long pair, the Cohere routes would read on.
    body = {"model": CROSS, "query": QUERY, "documents": DOCUMENTS, "max_chunks_per_doc": 1}
    with server.client() as client:
        raw = client.post("/v1/rerank", json={**body, "raw_scores": True})
        scored = client.post("/v2/rerank", json=body)
        cut = client.post("/v1/rerank", json={**body, "truncate": False})
    assert raw.status_code == 200 and scored.status_code == 200, (raw.text, scored.text)
    raw_by_index = np.zeros(len(DOCUMENTS))
    for row in raw.json()["results"]:
        raw_by_index[row["index"]] = row["relevance_score"]
    # Six layers of wide random weights (initializer 0.2) amplify float32 rounding: measured
    # max |diff| ~1e-4 against transformers; the trained model's weights are 10x narrower.
    diff = float(np.abs(raw_by_index - logits).max())
    print(f"\n{CROSS} stand-in: max |logit diff| vs transformers {diff:.1e}")
    assert diff < 5e-4, diff
    assert raw.headers["x-truncated-inputs"] == "3", "the long document was cut at 512 tokens"
    results = scored.json()["results"]
    assert [r["index"] for r in results] == list(np.argsort(-logits, kind="stable"))
    sigmoid = 1 / (1 + np.exp(-logits))
    for row in results:
        assert 0 <= row["relevance_score"] <= 1
        assert abs(row["relevance_score"] - sigmoid[row["index"]]) < 5e-4
    assert_openai_error(cut, 400, "documents[3]", "512 tokens")
