"""OpenAI's API on the real server, through the `openai` SDK, LangChain and raw HTTP."""

from __future__ import annotations

import json

import httpx
import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.support.api import decode_embedding, ollama_embed, openai_embed
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
TEXTS = ["a cat sits on the mat", "a kitten is on the rug", "stock market crash", "Zürich ☕"]


@pytest.fixture(scope="module")
def raw(server: GatewayServer) -> np.ndarray:
    """Float vectors of TEXTS from a plain POST /v1/embeddings."""
    with server.client() as client:
        return openai_embed(client, MODEL, TEXTS, encoding_format="float")


def sdk(server: GatewayServer, http_client: httpx.Client | None = None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1", api_key="unused", max_retries=0, http_client=http_client
    )


def test_float_vectors_match_the_ollama_route(server: GatewayServer, raw: np.ndarray) -> None:
    with server.client() as client:
        np.testing.assert_array_equal(raw, ollama_embed(client, MODEL, TEXTS))


def test_sdk_default_is_base64_and_decodes_to_the_same_vectors(
    server: GatewayServer, raw: np.ndarray
) -> None:
    sent: list[dict] = []

    def record(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    with httpx.Client(event_hooks={"request": [record]}) as http:
        response = sdk(server, http_client=http).embeddings.create(model=MODEL, input=TEXTS)
    assert sent[0]["encoding_format"] == "base64", "the SDK asks for base64 by default"
    vectors = np.asarray([item.embedding for item in response.data], np.float32)
    np.testing.assert_array_equal(vectors, raw)
    assert [item.index for item in response.data] == [0, 1, 2, 3]
    assert response.model == MODEL and response.object == "list"


def test_base64_wire_format(server: GatewayServer, raw: np.ndarray) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/embeddings", json={"model": MODEL, "input": TEXTS, "encoding_format": "base64"}
        )
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert all(isinstance(row["embedding"], str) for row in rows)
    # Standard alphabet with padding, 4 little-endian bytes per float: 384 floats -> 2048 chars.
    assert all(len(row["embedding"]) == 2048 for row in rows)
    decoded = np.asarray([decode_embedding(row["embedding"]) for row in rows])
    np.testing.assert_array_equal(decoded, raw)


def test_sdk_float_and_dimensions(server: GatewayServer, raw: np.ndarray) -> None:
    client = sdk(server)
    floats = client.embeddings.create(
        model=MODEL, input=TEXTS[0], encoding_format="float", dimensions=384
    )
    assert len(floats.data) == 1
    np.testing.assert_array_equal(np.asarray(floats.data[0].embedding, np.float32), raw[0])
    # Any width 1..384 is the cut-and-renormalized full vector, as OpenAI and Ollama serve it.
    for width in (1, 37, 128, 383, 384):
        cut = client.embeddings.create(model=MODEL, input=TEXTS, dimensions=width)
        vectors = np.asarray([item.embedding for item in cut.data], np.float32)
        want = raw[:, :width] / np.linalg.norm(raw[:, :width], axis=1, keepdims=True)
        assert vectors.shape == (len(TEXTS), width)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)
        cosine = np.sum(vectors * want, axis=1)  # both unit length
        assert cosine.min() >= 0.99999, (width, cosine)
    for width in (0, 385):  # outside 1..native: refused, never silently cut
        with pytest.raises(openai.BadRequestError) as caught:
            client.embeddings.create(model=MODEL, input=TEXTS[0], dimensions=width)
        assert caught.value.status_code == 400
        assert caught.value.param == "dimensions"
        assert "from 1 to 384" in caught.value.message


def test_response_fields_and_usage(server: GatewayServer, raw: np.ndarray) -> None:
    with server.client() as client:
        tokens = client.post("/api/embed", json={"model": MODEL, "input": TEXTS}).json()
        response = client.post(
            "/v1/embeddings",
            json={"model": "All-MiniLM:latest", "input": TEXTS, "encoding_format": "float"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == "All-MiniLM:latest", "the model is echoed as sent"
    assert [item["object"] for item in body["data"]] == ["embedding"] * len(TEXTS)
    assert body["usage"] == {
        "prompt_tokens": tokens["prompt_eval_count"],
        "total_tokens": tokens["prompt_eval_count"],
    }


def test_models_list_and_retrieve(server: GatewayServer) -> None:
    client = sdk(server)
    models = {model.id: model for model in client.models.list()}
    listed = models[f"{MODEL}:latest"]
    assert listed.object == "model" and listed.owned_by and listed.created > 0
    assert client.models.retrieve(MODEL).id == f"{MODEL}:latest"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"


def test_sdk_errors_carry_the_openai_shape(server: GatewayServer) -> None:
    client = sdk(server)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-model", input="hi")
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    with pytest.raises(openai.BadRequestError) as tokens:
        client.embeddings.create(model=MODEL, input=[[9906, 1917], [101, 999_999]])
    assert "input[1] has token id 999999, outside the cl100k_base" in tokens.value.message
    assert tokens.value.param == "input"


def test_langchain_openai_embeddings(server: GatewayServer, raw: np.ndarray) -> None:
    embeddings = OpenAIEmbeddings(
        model=MODEL,
        base_url=server.url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    documents = np.asarray(embeddings.embed_documents(TEXTS[:3]), np.float32)
    query = np.asarray(embeddings.embed_query(TEXTS[3]), np.float32)
    np.testing.assert_array_equal(documents, raw[:3])
    np.testing.assert_array_equal(query, raw[3])
