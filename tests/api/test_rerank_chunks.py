"""Long documents on the Cohere rerank routes: read in chunks of the model's length, each
document scored by its best chunk (v1's max_chunks_per_doc, default 10; v2 up to
max_tokens_per_doc, default 4096), for a cross-encoder, a plain embedder (cosine) and a ColBERT
model (MaxSim). `max_chunks_per_doc: 1` is the old truncation, which TEI's and Infinity's
/rerank keep.

The long document is `"the " * window` followed by the passage that answers the query: its
first chunk is filler, its second the passage alone, so its best chunk scores exactly as the
passage does on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cohere
import httpx
import numpy as np
import pytest

from tests.support.api import assert_openai_error
from tests.support.keyword_reranker import KEYWORD, keyword_reranker
from tests.support.models import NO_CACHE
from tools.gateway_server import GatewayServer
from tools.late_api import minilm_late_entry
from tools.models import minilm_entry, write_registry

MINILM, LATE, KEYWORDS = "all-minilm", "minilm-late", "keyword-reranker"
# A document's tokens one run reads: max_tokens 256 less [CLS] and [SEP]; the ColBERT model's
# document_length 256 less its marker, [CLS] and [SEP].
WINDOWS = {MINILM: 254, LATE: 253}
QUERY = "how many legs does a spider have"
PASSAGE = "Spiders are arachnids with eight legs, two body segments and no antennae."
OTHERS = [
    "At sea level, water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit.",
    "Giant pandas feed almost entirely on bamboo, eating shoots and leaves all day.",
    "Canberra, not Sydney, is the capital city of Australia.",
]
# The keyword reranker reads 32 tokens: less the pair's 3 special tokens and the query's 4, a
# chunk holds 25 of a document's tokens; the long document has 61, the keyword the last.
KEYWORD_QUERY = f"where is the {KEYWORD}"
KEYWORD_DOCUMENTS = ["a short document that does not have it", "the " * 60 + KEYWORD]


def long_document(model: str) -> str:
    return "the " * WINDOWS[model] + PASSAGE


@pytest.fixture(scope="module")
def server(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    folder = tmp_path_factory.mktemp("chunks")
    tokenizer = default_model_dir / "tokenizer.json"
    entries = {
        MINILM: minilm_entry(default_model_dir),
        LATE: minilm_late_entry(default_model_dir),
        KEYWORDS: keyword_reranker(folder / KEYWORDS, tokenizer, max_tokens=32),
    }
    registry = write_registry(folder / "registry.yaml", entries, default_model=MINILM)
    with GatewayServer(registry=registry, env=NO_CACHE) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: GatewayServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response


def scores(response: httpx.Response) -> np.ndarray:
    """Scores in the documents' order, from Cohere's or Infinity's results."""
    results = response.json()["results"]
    out = np.zeros(len(results))
    for row in results:
        out[row["index"]] = row["relevance_score"]
    return out


def first(response: httpx.Response) -> int:
    return int(response.json()["results"][0]["index"])


@pytest.mark.parametrize("model", [MINILM, LATE])
def test_a_passage_past_the_first_window_ranks_first(client: httpx.Client, model: str) -> None:
    body = {"model": model, "query": QUERY, "documents": [long_document(model), *OTHERS]}
    chunked = post(client, "/v1/rerank", body)
    assert first(chunked) == 0
    assert "x-truncated-inputs" not in chunked.headers  # every chunk of it was read
    # Its score is its best chunk's: the passage on its own.
    alone = scores(post(client, "/v1/rerank", {**body, "documents": [PASSAGE]}))[0]
    assert scores(chunked)[0] == pytest.approx(alone, abs=1e-5)

    # One chunk is truncation, as /rerank (Infinity's shape) reads a document: the passage is
    # not read, and the filler ranks last.
    one = post(client, "/v1/rerank", {**body, "max_chunks_per_doc": 1})
    assert one.headers["x-truncated-inputs"] == "0"
    assert first(one) != 0
    infinity = post(client, "/rerank", body)
    np.testing.assert_allclose(scores(one), scores(infinity), atol=1e-6)


def test_cohere_v2_reads_up_to_max_tokens_per_doc(
    server: GatewayServer, client: httpx.Client
) -> None:
    documents = [long_document(MINILM), *OTHERS]
    co = cohere.ClientV2(base_url=server.url, api_key="unused")
    answer = co.rerank(model=MINILM, query=QUERY, documents=documents)  # 4096 tokens by default
    assert answer.results[0].index == 0
    body = {"model": MINILM, "query": QUERY, "documents": documents}
    cut = post(client, "/v2/rerank", {**body, "max_tokens_per_doc": WINDOWS[MINILM]})
    assert cut.headers["x-truncated-inputs"] == "0"  # the passage was past the cut
    assert first(cut) != 0


def test_the_cross_encoder_scores_a_document_by_its_best_chunk(client: httpx.Client) -> None:
    body = {"model": KEYWORDS, "query": KEYWORD_QUERY, "documents": KEYWORD_DOCUMENTS}
    raw = {**body, "raw_scores": True}
    for path in ("/v1/rerank", "/v2/rerank"):
        chunked = post(client, path, raw)
        assert first(chunked) == 1, path
        assert scores(chunked).tolist() == [0.0, 1.0], path  # the keyword was read once
    # One chunk, or two (50 of its 61 tokens): the keyword is not read, and the cut is said.
    for chunks in (1, 2):
        cut = post(client, "/v1/rerank", {**raw, "max_chunks_per_doc": chunks})
        assert scores(cut).tolist() == [0.0, 0.0]
        assert cut.headers["x-truncated-inputs"] == "1"
    # One chunk reads what the model's own cut reads (Infinity's /rerank truncates).
    infinity = post(client, "/rerank", raw)
    assert scores(infinity).tolist() == [0.0, 0.0]


def test_truncate_false_refuses_only_what_the_chunks_cannot_hold(client: httpx.Client) -> None:
    body = {"model": KEYWORDS, "query": KEYWORD_QUERY, "documents": KEYWORD_DOCUMENTS}
    strict = {**body, "truncate": False}
    post(client, "/v1/rerank", strict)  # three chunks of ten hold it
    for chunks in (1, 2):  # as before chunking, for one
        response = client.post("/v1/rerank", json={**strict, "max_chunks_per_doc": chunks})
        assert_openai_error(
            response, 400, "documents[1]", code="context_length_exceeded", param="documents"
        )


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
@pytest.mark.parametrize("value", [0, -1, 2.5, "many", True, [3]])
def test_max_chunks_per_doc_is_a_positive_integer(
    client: httpx.Client, path: str, value: object
) -> None:
    body = {"model": MINILM, "query": QUERY, "documents": OTHERS, "max_chunks_per_doc": value}
    response = client.post(path, json=body)
    assert_openai_error(response, 400, "max_chunks_per_doc", param="max_chunks_per_doc")


def test_tei_keeps_its_truncation(client: httpx.Client) -> None:
    """TEI's /rerank reads a document up to the model's length, or refuses it with truncate:
    false (its contract); it does not chunk."""
    body = {"model": KEYWORDS, "query": KEYWORD_QUERY, "texts": KEYWORD_DOCUMENTS}
    rows = post(client, "/rerank", {**body, "raw_scores": True}).json()
    assert sorted(row["score"] for row in rows) == [0.0, 0.0]
    response = client.post("/rerank", json={**body, "truncate": False})
    assert response.status_code == 422, response.text


def billed(response: httpx.Response) -> int:
    units: int = response.json()["meta"]["billed_units"]["search_units"]
    return units


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_search_units_count_each_hundred_chunks_scored(client: httpx.Client, path: str) -> None:
    """Cohere bills one search unit per query with up to 100 documents, a long document counting
    once per chunk: KEYWORD_DOCUMENTS[1] is three chunks of the keyword reranker's window."""
    short, long = KEYWORD_DOCUMENTS
    body = {"model": KEYWORDS, "query": KEYWORD_QUERY}
    assert billed(post(client, path, {**body, "documents": [short]})) == 1
    assert billed(post(client, path, {**body, "documents": [short] * 100})) == 1
    assert billed(post(client, path, {**body, "documents": [short] * 101})) == 2
    # 98 short documents and a long one: 101 chunks scored, though 99 documents were sent.
    assert billed(post(client, path, {**body, "documents": [*[short] * 98, long]})) == 2
    # Read in one chunk, the long document is one document again.
    one = {**body, "documents": [*[short] * 98, long], "max_chunks_per_doc": 1}
    assert billed(post(client, path, one)) == 1
