"""Cohere v1 and v2 through the real `cohere` client and raw HTTP: fields, token limits, a
thousand documents in one request, errors, and the default rerank model."""

from __future__ import annotations

import time
import uuid
from typing import Any

import cohere
import httpx
import numpy as np
import pytest

from tests.support.api import assert_openai_error
from tests.support.rerank_api import (
    BERT,
    CROSS,
    LONG_DOCUMENT,
    MINILM,
    PROXY,
    SCORE_TOLERANCE,
    TOPIC_DOCUMENTS,
    TOPICS,
    post,
)
from tools.colbert_models import DOCUMENTS, QUERIES, ColbertModel
from tools.late_api import batch_stats

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
