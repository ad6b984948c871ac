"""Multi-vector (ColBERT) output through the real server, against PyLate.

The tiny random ColBERTs that PyLate built (answerai-colbert-small's BERT settings, and
GTE-ModernColBERT's ModernBERT settings with "[Q] "/"[D] " added tokens and no token types)
are served in both ONNX layouts: projection and L2 inside the graph, or hidden states with the
Dense weight applied by the gateway. Through `/v1/embeddings` (raw HTTP and the `openai` SDK,
float and base64 with `shape`) every token matrix must match PyLate's `encode(is_query=...)`
row for row (cosine >= 0.9999, exact token counts); `input_type` / `task` picks the marker;
Ollama's `/api/embed` cannot carry matrices and says where to go instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.support.api import assert_ollama_error, assert_openai_error
from tests.support.multivector import matrices_of, post_embeddings, reference
from tools.colbert_models import DOCUMENTS, QUERIES, ColbertModel
from tools.gateway_server import GatewayServer
from tools.late_api import assert_matches_pylate, colbert_entry
from tools.models import write_registry

# Served name -> (architecture, ONNX layout).
SERVED = {
    "colbert-bert": ("bert", "graph"),
    "colbert-bert-hidden": ("bert", "hidden+safetensors"),
    "colbert-modern": ("modernbert", "graph"),
    "colbert-modern-hidden": ("modernbert", "hidden+safetensors"),
}
BERT = "colbert-bert"
LONG_QUERY = 2  # QUERIES[2] is longer than query_length
LONG_DOCUMENTS = (5, 9)  # longer than document_length
LONG_DOCUMENT = LONG_DOCUMENTS[1]


@pytest.fixture(scope="module")
def late_server(
    colberts: dict[str, ColbertModel], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    entries = {
        name: colbert_entry(colberts[arch], layout) for name, (arch, layout) in SERVED.items()
    }
    registry = write_registry(tmp_path_factory.mktemp("multivector") / "registry.yaml", entries)
    with GatewayServer(registry=registry, env={"GATEWAY_CACHE_BYTES": "0"}) as running:
        yield running


@pytest.fixture(scope="module")
def client(late_server: GatewayServer) -> Iterator[httpx.Client]:
    with late_server.client() as http:
        yield http


def sdk(server: GatewayServer, http_client: httpx.Client | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1", api_key="unused", max_retries=0, http_client=http_client
    )


def text_tokens(model: ColbertModel, task: str) -> list[int]:
    """PyLate's own count of each text's tokens (special tokens and marker included, [MASK]
    expansion not: it is unattended with answerai's and GTE-ModernColBERT's settings)."""
    rows = model.facts["queries" if task == "query" else "documents"]
    return [sum(row["attention_mask"]) for row in rows]


# -- parity with PyLate ------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["query", "document"])
@pytest.mark.parametrize("name", list(SERVED))
def test_float_matrices_match_pylate(
    client: httpx.Client, colberts: dict[str, ColbertModel], name: str, task: str
) -> None:
    model = colberts[SERVED[name][0]]
    texts = QUERIES if task == "query" else DOCUMENTS
    payload = post_embeddings(
        client,
        {"model": name, "input": texts, "input_type": task, "encoding_format": "float"},
    )
    assert payload["model"] == name and payload["object"] == "list"
    ours = matrices_of(payload)
    worst, diff = assert_matches_pylate(ours, reference(model, task), f"{name} {task}")
    for matrix, item in zip(ours, payload["data"], strict=True):
        assert item["shape"] == [len(matrix), model.settings.dim]
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    if task == "query":  # [MASK] expansion: every query has query_length rows
        assert {len(m) for m in ours} == {model.settings.query_length}
    # usage counts the texts' own tokens (marker included), as PyLate tokenizes them.
    tokens = sum(text_tokens(model, task))
    assert payload["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    print(f"{name} {task} vectors: min per-token cosine {worst:.7f}, max abs diff {diff:.1e}")


@pytest.mark.parametrize("name", list(SERVED))
def test_base64_carries_row_major_float32_and_shape(
    client: httpx.Client, colberts: dict[str, ColbertModel], name: str
) -> None:
    model = colberts[SERVED[name][0]]
    for task, texts in (("query", QUERIES), ("document", DOCUMENTS)):
        body = {"model": name, "input": texts, "input_type": task}
        floats = matrices_of(post_embeddings(client, {**body, "encoding_format": "float"}))
        payload = post_embeddings(client, {**body, "encoding_format": "base64"})
        assert all(isinstance(item["embedding"], str) for item in payload["data"])
        decoded = matrices_of(payload)
        assert_matches_pylate(decoded, reference(model, task), f"{name} base64 {task}")
        for ours, other in zip(decoded, floats, strict=True):
            np.testing.assert_allclose(ours, other, atol=1e-6)


def test_a_text_alone_equals_the_same_text_in_a_batch(client: httpx.Client) -> None:
    batch = matrices_of(
        post_embeddings(client, {"model": BERT, "input": DOCUMENTS, "encoding_format": "float"})
    )
    for index in (0, 3, LONG_DOCUMENT):
        (alone,) = matrices_of(
            post_embeddings(
                client, {"model": BERT, "input": DOCUMENTS[index], "encoding_format": "float"}
            )
        )
        np.testing.assert_allclose(alone, batch[index], atol=1e-5)


# -- the openai SDK ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["colbert-bert", "colbert-modern-hidden"])
def test_openai_sdk_float_and_default_base64(
    late_server: GatewayServer, colberts: dict[str, ColbertModel], name: str
) -> None:
    model = colberts[SERVED[name][0]]
    sent: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    with httpx.Client(event_hooks={"request": [record]}) as http:
        client = sdk(late_server, http_client=http)
        floats = client.embeddings.create(
            model=name,
            input=QUERIES,
            encoding_format="float",
            extra_body={"input_type": "query"},
        )
        # The SDK asks for base64 unless told otherwise, and decodes the string it gets back
        # into a flat list of floats: the extra `shape` field says how to fold it.
        default = client.embeddings.create(
            model=name, input=DOCUMENTS, extra_body={"input_type": "document"}
        )
    assert sent[0]["encoding_format"] == "float" and sent[1]["encoding_format"] == "base64"
    assert floats.model == name and len(floats.data) == len(QUERIES)
    from_floats = [np.asarray(item.embedding, dtype=np.float32) for item in floats.data]
    assert all(matrix.ndim == 2 for matrix in from_floats)
    assert [list(m.shape) for m in from_floats] == [item.shape for item in floats.data]
    assert_matches_pylate(from_floats, reference(model, "query"), f"{name} sdk float")

    folded = []
    for item in default.data:
        flat = np.asarray(item.embedding, dtype=np.float32)
        assert flat.ndim == 1, "the SDK decodes base64 to a flat list"
        folded.append(flat.reshape(item.shape))
    assert_matches_pylate(folded, reference(model, "document"), f"{name} sdk base64")
    assert default.usage.prompt_tokens == sum(text_tokens(model, "document"))


# -- picking the marker ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "task"),
    [
        ({}, "document"),  # the registry's default_task
        ({"input_type": "query"}, "query"),
        ({"task": "query"}, "query"),
        ({"input_type": "search_query"}, "query"),
        ({"input_type": "retrieval.query"}, "query"),
        ({"model": f"{BERT}:query"}, "query"),
        ({"input_type": "document"}, "document"),
        ({"input_type": "passage"}, "document"),
        ({"task": "search_document"}, "document"),
        ({"model": f"{BERT}:document"}, "document"),
    ],
)
def test_input_type_or_task_picks_the_marker(
    client: httpx.Client,
    colberts: dict[str, ColbertModel],
    fields: dict[str, str],
    task: str,
) -> None:
    """The same texts come back as PyLate's query or document vectors, by the field alone."""
    model = colberts["bert"]
    texts = QUERIES if task == "query" else DOCUMENTS
    body = {"model": BERT, "input": texts, "encoding_format": "float", **fields}
    ours = matrices_of(post_embeddings(client, body))
    assert_matches_pylate(ours, reference(model, task), f"{fields} -> {task}")


def test_query_and_document_markers_differ_on_the_same_text(client: httpx.Client) -> None:
    text = "Late interaction keeps one vector per token."
    as_query, as_document = (
        matrices_of(
            post_embeddings(
                client,
                {"model": BERT, "input": [text], "input_type": task, "encoding_format": "float"},
            )
        )[0]
        for task in ("query", "document")
    )
    # [CLS] marker tokens... [SEP], then [MASK] expansion for the query only ("." is skipped
    # in documents).
    assert len(as_query) == 32 and len(as_document) < 32
    # Row 1 is the marker: [unused0] for queries, [unused1] for documents.
    assert float(as_query[1] @ as_document[1]) < 0.99


def test_tasks_the_model_does_not_have(client: httpx.Client) -> None:
    body = {"model": BERT, "input": ["x"]}
    response = client.post("/v1/embeddings", json={**body, "input_type": "clustering"})
    assert_openai_error(response, 400, "no task", "query", "document", param="task")
    response = client.post("/v1/embeddings", json={**body, "input_type": "sideways"})
    assert_openai_error(response, 400, "unknown input_type", param="input_type")


# -- what cannot carry matrices, and other refusals --------------------------------------------


@pytest.mark.parametrize("name", ["colbert-bert", "colbert-modern"])
def test_ollama_embed_refuses_late_models_and_names_the_routes(
    client: httpx.Client, name: str
) -> None:
    for path, body in (
        ("/api/embed", {"model": name, "input": ["hello world"]}),
        ("/api/embed", {"model": name, "input": "hello world", "truncate": False}),
        ("/api/embeddings", {"model": name, "prompt": "hello world"}),
    ):
        response = client.post(path, json=body)
        assert_ollama_error(
            response, 400, name, "one vector per token", "/v1/embeddings", "/v1/rerank",
            "/api/rerank",
        )  # fmt: skip


def test_dimensions_other_than_the_token_width(
    client: httpx.Client, colberts: dict[str, ColbertModel]
) -> None:
    body = {"model": BERT, "input": ["hello world"], "encoding_format": "float"}
    for dimensions in (64, 128, 95):
        response = client.post("/v1/embeddings", json={**body, "dimensions": dimensions})
        assert_openai_error(response, 400, "96", "dimensions", param="dimensions")
    response = client.post("/v1/embeddings", json={**body, "dimensions": 0})
    assert_openai_error(response, 400, param="dimensions")
    # The model's own width is accepted and changes nothing.
    same = matrices_of(post_embeddings(client, {**body, "dimensions": 96}))
    plain = matrices_of(post_embeddings(client, body))
    np.testing.assert_array_equal(same[0], plain[0])
    assert same[0].shape[1] == colberts["bert"].settings.dim


def test_truncate_false_refuses_what_pylate_would_cut(
    client: httpx.Client, colberts: dict[str, ColbertModel]
) -> None:
    model = colberts["bert"]
    body = {"model": BERT, "encoding_format": "float", "truncate": False}
    response = client.post(
        "/v1/embeddings",
        json={**body, "input": ["short", DOCUMENTS[LONG_DOCUMENT]], "input_type": "document"},
    )
    error = assert_openai_error(response, 400, "input[1]", "300", code="context_length_exceeded")
    assert error["param"] == "input"
    response = client.post(
        "/v1/embeddings", json={**body, "input": QUERIES[LONG_QUERY], "input_type": "query"}
    )
    # A single string (not a list) is named without an index.
    assert_openai_error(
        response, 400, "input is longer", "32 tokens", code="context_length_exceeded"
    )
    # Texts that fit go through with truncate off, unchanged.
    fits = [i for i in range(len(DOCUMENTS)) if i not in LONG_DOCUMENTS]
    ours = matrices_of(post_embeddings(client, {**body, "input": [DOCUMENTS[i] for i in fits]}))
    expected = [model.document_vectors(i) for i in fits]
    assert_matches_pylate(ours, expected, "truncate off, texts that fit")


def test_input_shapes(client: httpx.Client, colberts: dict[str, ColbertModel]) -> None:
    model = colberts["bert"]
    objects = [{"text": text} for text in DOCUMENTS[:3]]
    ours = matrices_of(
        post_embeddings(client, {"model": BERT, "input": objects, "encoding_format": "float"})
    )
    assert_matches_pylate(ours, [model.document_vectors(i) for i in range(3)], "{text} inputs")

    pixel = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    cases = [
        ({"input": []}, "empty"),
        ({"input": [{"image": pixel}]}, "text only"),
        ({"input": [[101, 2023, 102], "text"]}, "input[1] must be a non-empty list of token ids"),
    ]
    for fields, fragment in cases:
        response = client.post("/v1/embeddings", json={"model": BERT, **fields})
        assert_openai_error(response, 400, fragment, param="input")
    response = client.post("/v1/embeddings", json={"model": "colbert-nope", "input": "x"})
    assert_openai_error(response, 404, "colbert-nope", code="model_not_found", param="model")
