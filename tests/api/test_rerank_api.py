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

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cohere
import httpx
import numpy as np
import pytest

from tests.support.api import (
    assert_ollama_error,
    assert_openai_error,
    assert_tei_error,
    openai_embed,
)
from tests.support.models import PINNED_BATCHING
from tools import cross_encoder as cross
from tools.colbert_models import DOCUMENTS, PAIRS, QUERIES, ColbertModel
from tools.cross_encoder import cross_encoder_dir, cross_encoder_entry, transformers_logits
from tools.gateway_server import GatewayServer
from tools.late_api import (
    batch_stats,
    colbert_entry,
    minilm_late_entry,
    reference_maxsim,
    sigmoid,
)
from tools.models import minilm_entry, write_registry

COLBERTS = {"colbert-bert": "bert", "colbert-modern": "modernbert"}
BERT = "colbert-bert"
MINILM = "all-minilm"
PROXY = "minilm-late"  # MiniLM token states with answerai-colbert-small's markers and expansion
PROXY_PLAIN = "minilm-late-plain"  # the same without markers or [MASK] expansion
CROSS = "tiny-reranker"
SCORE_TOLERANCE = 1e-4
LONG_DOCUMENT = 9  # DOCUMENTS[9] is longer than document_length

# (query, the document written to answer it); every other document is about something else.
TOPICS = [
    (
        "how many legs does a spider have",
        "Spiders are arachnids with eight legs, two body segments and no antennae.",
    ),
    (
        "what is the boiling point of water at sea level",
        "At sea level, water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit.",
    ),
    (
        "how do I reset a forgotten email password",
        "If you forgot your email password, click 'Forgot password' on the sign-in page and "
        "follow the reset link.",
    ),
    (
        "when did the Second World War end",
        "The Second World War ended in 1945, when Germany surrendered in May and Japan in "
        "September.",
    ),
    (
        "how to brew a cup of green tea",
        "Steep green tea leaves in water at about 80 degrees for two to three minutes, then "
        "strain the tea into a cup.",
    ),
    (
        "why is the sky blue",
        "The sky looks blue because air molecules scatter the short blue wavelengths of sunlight "
        "more than red ones.",
    ),
    (
        "what do giant pandas eat",
        "Giant pandas feed almost entirely on bamboo, eating shoots and leaves for many hours a "
        "day.",
    ),
    (
        "how does a solar panel make electricity",
        "Solar panels hold photovoltaic cells in which sunlight frees electrons in silicon and "
        "produces an electric current.",
    ),
    (
        "training tips for a first marathon",
        "To train for your first marathon, build up your weekly long run slowly, take rest days "
        "and taper before the race.",
    ),
    (
        "what is the capital city of Australia",
        "Canberra, not Sydney, is the capital city of Australia.",
    ),
]
TOPIC_DOCUMENTS = [document for _, document in TOPICS]


@pytest.fixture(scope="module")
def cross_dir(default_model_dir: Path) -> Path:
    return cross_encoder_dir(default_model_dir / "tokenizer.json")


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def client(rerank_server: GatewayServer) -> Iterator[httpx.Client]:
    with rerank_server.client() as http:
        yield http


@pytest.fixture(scope="module")
def co(rerank_server: GatewayServer) -> cohere.Client:
    return cohere.Client(api_key="unused", base_url=rerank_server.url, timeout=120)


@pytest.fixture(scope="module")
def co2(rerank_server: GatewayServer) -> cohere.ClientV2:
    return cohere.ClientV2(api_key="unused", base_url=rerank_server.url, timeout=120)


@pytest.fixture(scope="module")
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


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def by_index(results: list[dict[str, Any]], key: str = "relevance_score") -> np.ndarray:
    """Scores in the documents' input order, after checking the results are sorted."""
    scores = [row[key] for row in results]
    assert scores == sorted(scores, reverse=True), "results must be most relevant first"
    ordered = np.full(len(results), np.nan)
    for row in results:
        ordered[row["index"]] = row[key]
    assert not np.isnan(ordered).any(), "every index exactly once"
    return ordered


# -- MaxSim parity with PyLate -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(COLBERTS))
def test_maxsim_matches_pylate(
    client: httpx.Client,
    colberts: dict[str, ColbertModel],
    pylate_scores: dict[str, np.ndarray],
    name: str,
) -> None:
    model = colberts[COLBERTS[name]]
    raw = np.zeros((len(QUERIES), len(DOCUMENTS)))
    for q, query in enumerate(QUERIES):
        # PyLate reads a document up to document_length: one chunk (the route's default reads
        # the rest of DOCUMENTS[LONG_DOCUMENT] too, tests/api/test_rerank_chunks.py).
        body = {
            "model": name,
            "query": query,
            "documents": DOCUMENTS,
            "raw_scores": True,
            "max_chunks_per_doc": 1,
        }
        results = post(client, "/v1/rerank", body)["results"]
        assert len(results) == len(DOCUMENTS)
        raw[q] = by_index(results)
    ours = np.array([raw[q, d] for q, d in PAIRS])
    diff = float(np.abs(ours - model.scores).max())
    assert diff <= SCORE_TOLERANCE, f"{name}: max abs MaxSim diff {diff} over {len(PAIRS)} pairs"
    assert np.ptp(model.scores) > 100 * SCORE_TOLERANCE, "the pairs must be told apart"
    # Every other combination, against MaxSim of PyLate's own vectors.
    np.testing.assert_allclose(raw, pylate_scores[name], atol=SCORE_TOLERANCE)
    # The default scale: MaxSim over the query's vectors (query_length with [MASK] expansion),
    # mapped into [0, 1] by (s + 1) / 2; the order is the raw order.
    body = {"model": name, "query": QUERIES[1], "documents": DOCUMENTS, "max_chunks_per_doc": 1}
    relevance = by_index(post(client, "/v1/rerank", body)["results"])
    expected = (raw[1] / model.settings.query_length + 1) / 2
    np.testing.assert_allclose(relevance, expected, atol=1e-6)
    assert ((relevance >= 0) & (relevance <= 1)).all()
    assert list(np.argsort(-relevance, kind="stable")) == list(np.argsort(-raw[1], kind="stable"))
    print(f"{name}: max abs MaxSim diff through /v1/rerank {diff:.2e} over {len(PAIRS)} pairs")


# -- the cohere client ---------------------------------------------------------------------------


def test_cohere_v1_client(
    co: cohere.Client, colberts: dict[str, ColbertModel], pylate_scores: dict[str, np.ndarray]
) -> None:
    query = 1
    expected = (pylate_scores[BERT][query] / colberts["bert"].settings.query_length + 1) / 2
    # One chunk per document, as PyLate reads them (Cohere's SDK sends max_chunks_per_doc).
    full = co.rerank(model=BERT, query=QUERIES[query], documents=DOCUMENTS, max_chunks_per_doc=1)
    order = [r.index for r in full.results]
    assert sorted(order) == list(range(len(DOCUMENTS)))
    assert order == sorted(order, key=lambda i: -expected[i])
    scores = [r.relevance_score for r in full.results]
    np.testing.assert_allclose(scores, expected[order], atol=1e-5)
    assert all(r.document is None for r in full.results)
    assert full.meta.api_version.version == "1"
    uuid.UUID(full.id)

    top = co.rerank(
        model=BERT,
        query=QUERIES[query],
        documents=DOCUMENTS,
        top_n=3,
        return_documents=True,
        max_chunks_per_doc=1,
    )
    assert [r.index for r in top.results] == order[:3]
    assert [r.relevance_score for r in top.results] == scores[:3]
    assert [r.document.text for r in top.results] == [DOCUMENTS[i] for i in order[:3]]

    # Documents as objects: `text` is ranked, the other fields come back untouched.
    objects = [{"text": text, "id": f"doc-{i}"} for i, text in enumerate(DOCUMENTS)]
    as_objects = co.rerank(
        model=BERT,
        query=QUERIES[query],
        documents=objects,
        top_n=4,
        return_documents=True,
        max_chunks_per_doc=1,
    )
    assert [r.index for r in as_objects.results] == order[:4]
    np.testing.assert_allclose([r.relevance_score for r in as_objects.results], scores[:4])
    for r in as_objects.results:
        assert r.document.text == DOCUMENTS[r.index]
        assert r.document.model_extra == {"id": f"doc-{r.index}"}

    empty = co.rerank(model=BERT, query=QUERIES[query], documents=[])
    assert empty.results == []


def test_cohere_v1_rank_fields(co: cohere.Client, client: httpx.Client) -> None:
    """rank_fields picks what is ranked: the title answers the query, the text does not."""
    filler = "Quarterly meeting notes: the agenda, the attendees and the action items."
    documents = [
        {"title": text, "text": filler, "id": str(i)} for i, text in enumerate(TOPIC_DOCUMENTS)
    ]
    query = TOPICS[6][0]
    by_title = co.rerank(
        model=PROXY, query=query, documents=documents, rank_fields=["title"], return_documents=True
    )
    assert by_title.results[0].index == 6
    assert by_title.results[0].document.model_extra == {"title": TOPIC_DOCUMENTS[6], "id": "6"}
    # Fields are ranked as "name: value" lines, in the order asked for.
    both = co.rerank(model=PROXY, query=query, documents=documents, rank_fields=["title", "text"])
    as_strings = post(
        client,
        "/v1/rerank",
        {
            "model": PROXY,
            "query": query,
            "documents": [f"title: {d['title']}\ntext: {d['text']}" for d in documents],
        },
    )["results"]
    assert [(r.index, r.relevance_score) for r in both.results] == [
        (r["index"], r["relevance_score"]) for r in as_strings
    ]
    with pytest.raises(cohere.BadRequestError) as refused:
        co.rerank(model=PROXY, query=query, documents=documents, rank_fields=["author"])
    assert refused.value.status_code == 400
    assert "author" in refused.value.body["error"]["message"]


def test_cohere_v2_client(co: cohere.Client, co2: cohere.ClientV2) -> None:
    v1 = co.rerank(model=BERT, query=QUERIES[4], documents=DOCUMENTS)
    v2 = co2.rerank(model=BERT, query=QUERIES[4], documents=DOCUMENTS, top_n=5)
    assert [(r.index, r.relevance_score) for r in v2.results] == [
        (r.index, r.relevance_score) for r in v1.results[:5]
    ]
    assert v2.meta.api_version.version == "2"
    uuid.UUID(v2.id)
    assert co2.rerank(model=BERT, query=QUERIES[4], documents=[]).results == []
    with pytest.raises(cohere.NotFoundError) as missing:
        co2.rerank(model="rerank-v3.5", query="q", documents=["a"])
    assert missing.value.status_code == 404
    error = missing.value.body["error"]
    assert error["code"] == "model_not_found" and "rerank-v3.5" in error["message"]


def test_cohere_v2_older_sdk_fields(client: httpx.Client) -> None:
    """SDKs before 5.16 sent return_documents and document objects to /v2/rerank too."""
    objects = [{"text": text} for text in TOPIC_DOCUMENTS[:4]]
    body = {
        "model": PROXY,
        "query": TOPICS[2][0],
        "documents": objects,
        "return_documents": True,
        "top_n": 2,
        "max_tokens_per_doc": 4096,
        "priority": 0,
    }
    results = post(client, "/v2/rerank", body)["results"]
    assert [r["index"] for r in results][:1] == [2] and len(results) == 2
    assert all(r["document"] == objects[r["index"]] for r in results)
    response = client.post("/v2/rerank", json={"query": "q", "documents": ["a"]})
    assert_openai_error(response, 400, "model", param="model")


def test_jina_gets_documents_unless_it_says_not(co: cohere.Client, client: httpx.Client) -> None:
    """Jina's API documents return_documents default true (it was false here); Cohere documents
    false, which its SDK still gets (test_cohere_v1_client), and so does /v2/rerank."""
    objects = [{"text": TOPIC_DOCUMENTS[0], "id": "a"}, TOPIC_DOCUMENTS[1]]
    body = {"model": PROXY, "query": TOPICS[1][0], "documents": objects}
    results = post(client, "/v1/rerank", body)["results"]
    assert [r["index"] for r in results] == [1, 0]
    assert [r["document"] for r in results] == [{"text": TOPIC_DOCUMENTS[1]}, objects[0]]
    plain = post(client, "/v1/rerank", {**body, "return_documents": False})["results"]
    assert all("document" not in r for r in plain)
    assert all("document" not in r for r in post(client, "/v2/rerank", body)["results"])
    from_sdk = co.rerank(model=PROXY, query=TOPICS[1][0], documents=TOPIC_DOCUMENTS[:2])
    assert all(r.document is None for r in from_sdk.results)
    # Cohere's JavaScript SDK (cohere-ai) names itself differently: Cohere's default too.
    from_js_sdk = client.post("/v1/rerank", json=body, headers={"X-Fern-SDK-Name": "cohere-ai"})
    assert all("document" not in r for r in from_js_sdk.json()["results"])


@pytest.mark.parametrize("model", [MINILM, PROXY, CROSS])
def test_cohere_max_tokens_per_doc(client: httpx.Client, model: str) -> None:
    """Each document is cut to its first max_tokens_per_doc tokens (WordPiece: "spiders",
    "are", "ara", "##ch", "##ni", "##ds" end at character 21) and scored as that text; the cut
    ones are named in X-Truncated-Inputs. Below the model's length only; 0 is a 400."""
    spider, short = TOPIC_DOCUMENTS[0], "spiders"
    body = {"model": model, "query": TOPICS[0][0], "raw_scores": True}
    capped = client.post(
        "/v2/rerank", json={**body, "documents": [spider, short], "max_tokens_per_doc": 6}
    )
    assert capped.status_code == 200, capped.text
    assert capped.headers["X-Truncated-Inputs"] == "0"
    scores = {r["index"]: r["relevance_score"] for r in capped.json()["results"]}
    alone = post(client, "/v2/rerank", {**body, "documents": [spider[:21], short]})["results"]
    expected = {r["index"]: r["relevance_score"] for r in alone}
    assert scores == pytest.approx(expected, abs=SCORE_TOLERANCE)
    whole = post(client, "/v2/rerank", {**body, "documents": [spider]})["results"][0]
    assert abs(whole["relevance_score"] - scores[0]) > SCORE_TOLERANCE  # the cut mattered
    roomy = client.post(
        "/v2/rerank", json={**body, "documents": [spider], "max_tokens_per_doc": 4096}
    )
    assert "X-Truncated-Inputs" not in roomy.headers
    assert roomy.json()["results"][0]["relevance_score"] == pytest.approx(
        whole["relevance_score"], abs=SCORE_TOLERANCE
    )
    response = client.post(
        "/v2/rerank", json={**body, "documents": [spider], "max_tokens_per_doc": 0}
    )
    assert_openai_error(response, 400, "max_tokens_per_doc", param="max_tokens_per_doc")


@pytest.mark.parametrize("model", [MINILM, PROXY])
def test_a_cut_query_is_reported(client: httpx.Client, model: str) -> None:
    """A query past the model's query length is cut (truncate: true) and says so in a header,
    on every rerank route; truncate: false refuses it."""
    long_query = " ".join(["spider legs"] * 200)
    for path, extra in (("/v1/rerank", {}), ("/rerank", {}), ("/api/rerank", {})):
        body = {"model": model, "query": long_query, "documents": TOPIC_DOCUMENTS[:2], **extra}
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        assert response.headers["X-Truncated-Query"] == "true", path
        assert "X-Truncated-Inputs" not in response.headers
        short = client.post(path, json={**body, "query": TOPICS[0][0]})
        assert "X-Truncated-Query" not in short.headers
    refused = client.post("/v1/rerank", json={**body, "truncate": False})
    assert_openai_error(refused, 400, "query", param="query")


def test_a_thousand_documents_in_one_request(co2: cohere.ClientV2, client: httpx.Client) -> None:
    """Encoded once each, in batches, and ranked: the 100 copies of the answer come first."""
    documents = [f"Note {i}: {TOPIC_DOCUMENTS[i % 10]}" for i in range(1000)]
    topic = 3
    co2.rerank(model=PROXY, query="warm up", documents=["load the model"])
    batches_before, items_before = batch_stats(client, PROXY)
    started = time.perf_counter()
    response = co2.rerank(model=PROXY, query=TOPICS[topic][0], documents=documents)
    elapsed = time.perf_counter() - started
    batches_after, items_after = batch_stats(client, PROXY)
    batches, items = batches_after - batches_before, items_after - items_before
    indices = [r.index for r in response.results]
    assert sorted(indices) == list(range(1000))
    scores = [r.relevance_score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    assert {i % 10 for i in indices[:100]} == {topic}, "every copy of the answer ranks first"
    assert items == 1001, "the query and each document encoded exactly once"
    assert 1 < batches < items, "encoded in batches"

    started = time.perf_counter()
    top = post(
        client,
        "/api/rerank",
        {"model": PROXY, "query": TOPICS[topic][0], "documents": documents, "top_k": 10},
    )["results"]
    n8n_elapsed = time.perf_counter() - started
    assert [r["index"] for r in top] == indices[:10]
    print(
        f"1,000 documents: {elapsed:.2f}s (cohere v2), {n8n_elapsed:.2f}s (/api/rerank, top_k 10);"
        f" {batches} batches for {items} items"
    )


# -- the n8n Ollama rerank node ------------------------------------------------------------------


def test_n8n_ollama_rerank_shape(client: httpx.Client) -> None:
    query, documents = TOPICS[5][0], TOPIC_DOCUMENTS
    body = {"model": PROXY, "query": query, "documents": documents, "top_k": 3}
    payload = post(client, "/api/rerank", body)
    assert set(payload) == {"model", "results"} and payload["model"] == PROXY
    results = payload["results"]
    assert len(results) == 3 and results[0]["index"] == 5
    for row in results:
        assert set(row) == {"index", "document", "relevance_score"}
        assert row["document"] == documents[row["index"]]  # echoed as the string sent
    scores = [row["relevance_score"] for row in results]
    assert scores == sorted(scores, reverse=True)
    # Without top_k: every document, on the same scale as /v1/rerank.
    everything = post(client, "/api/rerank", {**body, "top_k": None})["results"]
    cohere_shape = post(
        client, "/v1/rerank", {"model": PROXY, "query": query, "documents": documents}
    )
    np.testing.assert_allclose(by_index(everything), by_index(cohere_shape["results"]), atol=1e-6)
    assert [row["index"] for row in everything[:3]] == [row["index"] for row in results]
    assert post(client, "/api/rerank", {**body, "documents": []}) == {"model": PROXY, "results": []}
    # top_k beyond the documents returns them all.
    assert len(post(client, "/api/rerank", {**body, "top_k": 50})["results"]) == len(documents)


def test_n8n_ollama_rerank_errors(client: httpx.Client) -> None:
    body = {"model": PROXY, "query": "why is the sky blue", "documents": TOPIC_DOCUMENTS[:3]}
    cases: list[tuple[dict[str, Any], int, tuple[str, ...]]] = [
        ({**body, "model": "no-such-reranker"}, 404, ("no-such-reranker", "not found")),
        ({k: v for k, v in body.items() if k != "query"}, 400, ("query",)),
        ({k: v for k, v in body.items() if k != "model"}, 400, ("model",)),
        ({**body, "query": "  "}, 400, ("query",)),
        ({**body, "top_k": 0}, 400, ("top_k",)),
        ({**body, "documents": ["fine", 7]}, 400, ("documents",)),
        ({**body, "documents": "not a list"}, 400, ("documents",)),
    ]
    for fields, status, fragments in cases:
        assert_ollama_error(client.post("/api/rerank", json=fields), status, *fragments)
    response = client.post(
        "/api/rerank",
        content=b'{"model": "x", "query": ',
        headers={"content-type": "application/json"},
    )
    assert_ollama_error(response, 400, "json")


# -- Infinity and TEI ----------------------------------------------------------------------------


def test_infinity_shape(client: httpx.Client) -> None:
    body = {
        "model": PROXY,
        "query": TOPICS[7][0],
        "documents": TOPIC_DOCUMENTS,
        "return_documents": True,
        "top_n": 4,
    }
    payload = post(client, "/rerank", body)
    assert payload["object"] == "rerank" and payload["model"] == PROXY
    assert payload["id"].startswith("infinity-") and isinstance(payload["created"], int)
    assert payload["usage"]["total_tokens"] > 0
    results = payload["results"]
    assert len(results) == 4 and results[0]["index"] == 7
    # Infinity's document is the plain string, not Cohere's {"text": ...}.
    assert all(row["document"] == TOPIC_DOCUMENTS[row["index"]] for row in results)
    scores = [row["relevance_score"] for row in results]
    assert scores == sorted(scores, reverse=True)
    plain = post(client, "/rerank", {**body, "return_documents": False})["results"]
    assert all("document" not in row for row in plain)
    response = client.post("/rerank", json={**body, "model": "mxbai-rerank-xsmall-v1"})
    assert_ollama_error(response, 404, "mxbai-rerank-xsmall-v1", "not found")


def test_tei_shape(client: httpx.Client) -> None:
    body = {"query": TOPICS[8][0], "texts": TOPIC_DOCUMENTS, "model": PROXY}
    rows = post(client, "/rerank", {**body, "return_text": True})
    assert isinstance(rows, list) and len(rows) == len(TOPIC_DOCUMENTS)
    assert rows[0]["index"] == 8
    assert all(set(row) == {"index", "score", "text"} for row in rows)
    assert all(row["text"] == TOPIC_DOCUMENTS[row["index"]] for row in rows)
    normalized = by_index(rows, "score")
    raw = by_index(post(client, "/rerank", {**body, "raw_scores": True}), "score")
    # MaxSim over 32 query vectors, mapped into [0, 1].
    np.testing.assert_allclose((raw / 32 + 1) / 2, normalized, atol=1e-6)
    assert all(set(row) == {"index", "score"} for row in post(client, "/rerank", body))
    response = client.post("/rerank", json={**body, "documents": TOPIC_DOCUMENTS})
    assert_tei_error(response, 422, "Validation", "texts")
    # As TEI: a query beside an empty text is a pair it ranks; only an empty batch is refused.
    blank = post(client, "/rerank", {**body, "texts": ["a", ""]})
    assert sorted(row["index"] for row in blank) == [0, 1]
    assert_tei_error(client.post("/rerank", json={**body, "texts": []}), 400, "Empty", "texts")


def test_tei_truncation_fields(client: httpx.Client) -> None:
    """As TEI: `truncate: null` is the default (long texts are cut), and a left
    `truncation_direction` is refused as /embed refuses it, not silently cut on the right."""
    body = {"query": "a cat", "texts": ["a kitten", "word " * 600], "model": MINILM}
    default = post(client, "/rerank", body)
    assert post(client, "/rerank", {**body, "truncate": None}) == default
    assert post(client, "/rerank", {**body, "truncation_direction": "right"}) == default
    for direction in ("left", "Left"):
        left = client.post("/rerank", json={**body, "truncation_direction": direction})
        assert_tei_error(left, 422, "Validation", "truncation_direction")


# -- other scorers -------------------------------------------------------------------------------


def test_plain_embedder_reranks_by_cosine(client: httpx.Client) -> None:
    vectors = openai_embed(client, MINILM, [TOPICS[0][0], *TOPIC_DOCUMENTS])
    cosine = vectors[1:] @ vectors[0]  # unit vectors: the dot is the cosine
    body = {"model": MINILM, "query": TOPICS[0][0], "documents": TOPIC_DOCUMENTS}
    results = post(client, "/v1/rerank", body)["results"]
    np.testing.assert_allclose(by_index(results), (cosine + 1) / 2, atol=1e-5)
    raw = post(client, "/v2/rerank", {**body, "raw_scores": True})["results"]
    np.testing.assert_allclose(by_index(raw), cosine, atol=1e-5)
    assert [r["index"] for r in raw] == [r["index"] for r in results], "order kept"
    for index, (query, _) in enumerate(TOPICS):
        body = {"model": MINILM, "query": query, "documents": TOPIC_DOCUMENTS, "top_n": 1}
        assert post(client, "/v1/rerank", body)["results"][0]["index"] == index


def test_cross_encoder_matches_transformers(client: httpx.Client, cross_dir: Path) -> None:
    logits = transformers_logits(cross_dir, cross.QUERY, cross.DOCUMENTS, cross.MAX_TOKENS)
    assert np.ptp(logits) > 0.1, "the pairs are told apart, so the comparison means something"
    # transformers cuts the long pair (longest first): one chunk, the model's own cut.
    body = {
        "model": CROSS,
        "query": cross.QUERY,
        "documents": cross.DOCUMENTS,
        "max_chunks_per_doc": 1,
    }
    relevance = by_index(post(client, "/v1/rerank", body)["results"])
    raw = by_index(post(client, "/v1/rerank", {**body, "raw_scores": True})["results"])
    diff = float(np.abs(raw - logits).max())
    assert diff <= SCORE_TOLERANCE, f"max abs logit diff {diff}"
    np.testing.assert_allclose(relevance, sigmoid(logits), atol=SCORE_TOLERANCE)
    assert ((relevance > 0) & (relevance < 1)).all()
    n8n = post(client, "/api/rerank", {**body, "top_k": 2})["results"]
    assert [row["index"] for row in n8n] == list(np.argsort(-logits)[:2])
    response = client.post("/v1/rerank", json={**body, "truncate": False})
    assert_openai_error(
        response, 400, f"documents[{cross.LONG}]", code="context_length_exceeded", param="documents"
    )
    print(f"cross-encoder through /v1/rerank: max abs logit diff {diff:.2e}")


# -- errors on the Cohere routes -----------------------------------------------------------------


def test_cohere_route_errors(client: httpx.Client, co: cohere.Client) -> None:
    body = {"model": BERT, "query": "what is colbert?", "documents": DOCUMENTS[:3]}
    cases: list[tuple[dict[str, Any], int, tuple[str, ...], str | None]] = [
        ({**body, "model": "rerank-english-v3.0"}, 404, ("rerank-english-v3.0",), "model"),
        ({k: v for k, v in body.items() if k != "query"}, 400, ("query",), None),
        ({**body, "query": ""}, 400, ("query",), "query"),
        ({**body, "top_n": 0}, 400, ("top_n",), "top_n"),
        ({**body, "top_n": -3}, 400, ("top_n",), "top_n"),
        ({**body, "documents": [1, 2]}, 400, ("documents",), None),
        ({**body, "documents": [{"title": "no text"}]}, 400, ("documents[0]", "text"), "documents"),
        ({**body, "documents": None}, 400, ("documents",), None),
    ]
    for path in ("/v1/rerank", "/v2/rerank"):
        for fields, status, fragments, param in cases:
            response = client.post(path, json=fields)
            assert_openai_error(response, status, *fragments, param=param)
    long = {**body, "documents": ["short", DOCUMENTS[LONG_DOCUMENT]], "truncate": False}
    # Read in one chunk, the long document does not fit; in the default ten, it does.
    response = client.post("/v1/rerank", json={**long, "max_chunks_per_doc": 1})
    assert_openai_error(
        response, 400, "documents[1]", "300", code="context_length_exceeded", param="documents"
    )
    assert len(post(client, "/v1/rerank", long)["results"]) == 2
    # The same document is cut silently (PyLate's behaviour) when truncation is allowed.
    one = {**long, "truncate": True, "max_chunks_per_doc": 1}
    assert len(post(client, "/v1/rerank", one)["results"]) == 2
    with pytest.raises(cohere.NotFoundError) as missing:
        co.rerank(model="rerank-english-v3.0", query="q", documents=["a"])
    assert missing.value.status_code == 404
    with pytest.raises(cohere.BadRequestError):
        co.rerank(model=BERT, query="q", documents=["a"], top_n=0)


def test_default_rerank_model(client: httpx.Client) -> None:
    """Cohere v1 and Infinity may name no model: the registry's default_rerank_model ranks."""
    body = {"query": TOPICS[9][0], "documents": TOPIC_DOCUMENTS}
    payload = post(client, "/v1/rerank", body)
    assert payload["model"] == PROXY and payload["results"][0]["index"] == 9
    assert post(client, "/rerank", body)["model"] == PROXY


# -- real weights: MiniLM token states as ColBERT vectors ----------------------------------------


@pytest.mark.parametrize("model", [PROXY, PROXY_PLAIN])
def test_minilm_token_vectors_rank_the_answer_first(client: httpx.Client, model: str) -> None:
    margins = []
    for index, (query, _) in enumerate(TOPICS):
        body = {"model": model, "query": query, "documents": TOPIC_DOCUMENTS}
        n8n = post(client, "/api/rerank", body)["results"]
        cohere_shape = post(client, "/v1/rerank", body)["results"]
        assert n8n[0]["index"] == index, f"{query!r}: {n8n[:3]}"
        assert cohere_shape[0]["index"] == index
        relevance = by_index(cohere_shape)
        np.testing.assert_allclose(by_index(n8n), relevance, atol=1e-6)
        margins.append(float(relevance[index] - np.delete(relevance, index).max()))
    print(
        f"{model}: relevance margin (answer - best other of 9) over {len(TOPICS)} queries: "
        f"min {min(margins):.3f} mean {np.mean(margins):.3f}"
    )
    assert min(margins) > 0
