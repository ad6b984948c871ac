"""A model that produces NaN or infinity answers with an error on every route, never with null.

JSON has no NaN or infinity: written out they become `null`, which Cohere, Jina and TEI clients
cannot read as a relevance score and vector stores keep as a broken component. /api/embed has
always refused them ("the model produced NaN or infinite values for this input"); multi-vector
embeddings, rerank scores and /embed_all token vectors must give the same error in their route
family's shape, and the model must go on serving. The models (tests/support/non_finite.py) are
finite for every text without the word "apple".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.models import NO_CACHE
from tests.support.non_finite import CROSS, LATE, TEXT, WORD, non_finite_models
from tools.gateway_server import GatewayServer
from tools.models import write_registry

FAULTY = f"an {WORD} a day"
FINE = "a banana a day"
MESSAGE = "the model produced NaN or infinite values for this input"


@pytest.fixture(scope="module")
def client(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("non-finite")
    entries = non_finite_models(folder / "models", default_model_dir / "tokenizer.json")
    registry = write_registry(folder / "registry.yaml", entries, default_model=TEXT)
    with GatewayServer(registry=registry, env=NO_CACHE) as server, server.client() as http:
        yield http


def openai_embedding(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "input": [FINE, text], "encoding_format": "float"}


def cohere_rerank(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "query": "fruit", "documents": [FINE, text]}


def tei_rerank(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "query": "fruit", "texts": [FINE, text]}


def tei_inputs(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "inputs": [FINE, text]}


def floats(value: Any) -> list[Any]:
    """Every leaf of a JSON answer that sits where a number belongs (lists, scores)."""
    if isinstance(value, list):
        return [leaf for item in value for leaf in floats(item)]
    if isinstance(value, dict):
        return [v for k, v in value.items() if k in ("relevance_score", "score")] + [
            leaf for k, v in value.items() if isinstance(v, list | dict) for leaf in floats(v)
        ]
    return [value] if value is None or isinstance(value, float) else []


# (route, body, the route family's single-vector embedding route and body: its answer to the
# same fault is the reference for status and body)
OPENAI = ("/v1/embeddings", openai_embedding)
TEI = ("/embed", tei_inputs)
CASES: list[tuple[str, Callable[[str, str], dict[str, Any]], str, tuple[str, Any]]] = [
    ("/v1/embeddings", openai_embedding, LATE, OPENAI),
    ("/v1/rerank", cohere_rerank, LATE, OPENAI),
    ("/v1/rerank", cohere_rerank, TEXT, OPENAI),
    ("/v1/rerank", cohere_rerank, CROSS, OPENAI),
    ("/v2/rerank", cohere_rerank, LATE, OPENAI),
    ("/rerank", tei_rerank, LATE, TEI),
    ("/rerank", tei_rerank, TEXT, TEI),
    ("/rerank", tei_rerank, CROSS, TEI),
    ("/embed_all", tei_inputs, TEXT, TEI),
    ("/embed_all", tei_inputs, LATE, TEI),
]


def test_the_single_vector_path_refuses_non_finite_vectors(client: httpx.Client) -> None:
    """The existing behaviour the other routes must match (and proof the models misbehave)."""
    answer = client.post("/api/embed", json={"model": TEXT, "input": [FINE, FAULTY]})
    assert (answer.status_code, answer.json()) == (400, {"error": MESSAGE})
    for (route, body), status in ((OPENAI, 400), (TEI, 422)):  # TEI's validation status
        reference = client.post(route, json=body(TEXT, FAULTY))
        assert reference.status_code == status, reference.text
        assert MESSAGE in reference.text


@pytest.mark.parametrize(
    ("route", "body", "model", "family"),
    CASES,
    ids=[f"{route}-{model}" for route, _, model, _ in CASES],
)
def test_non_finite_output_is_the_same_error_and_the_model_serves_on(
    client: httpx.Client,
    route: str,
    body: Callable[[str, str], dict[str, Any]],
    model: str,
    family: tuple[str, Callable[[str, str], dict[str, Any]]],
) -> None:
    reference_route, reference_body = family
    reference = client.post(reference_route, json=reference_body(TEXT, FAULTY))
    faulty = client.post(route, json=body(model, FAULTY))
    assert (faulty.status_code, faulty.json()) == (reference.status_code, reference.json()), (
        faulty.text[:300]
    )
    fine = client.post(route, json=body(model, "a cherry a day"))
    assert fine.status_code == 200, fine.text
    numbers = floats(fine.json())
    assert numbers and all(isinstance(x, float) for x in numbers), fine.text[:300]
