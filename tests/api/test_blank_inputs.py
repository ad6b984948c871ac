"""Empty and blank texts are embedded, as Ollama and TEI embed them, on every route and through
the clients' defaults: a blank chunk in a batch no longer fails the whole request.

Their vector is the model's special tokens alone ([CLS] [SEP] for all-minilm), so "", " " and
"\\n" give one vector. Exceptions kept from the references: Ollama's `input: ""` (and the legacy
`prompt: ""`) load the model and embed nothing, TEI refuses "" ("Empty") but embeds " ".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import ollama
import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.support.api import assert_ollama_error, assert_tei_error, ollama_embed
from tests.support.models import NO_CACHE
from tests.support.tiktoken_cache import seed_tiktoken_cache
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

MODEL = "all-minilm"
BLANKS = ["", " ", "\n", "\t  \r\n"]


@pytest.fixture(scope="module")
def client(server: GatewayServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def blank(client: httpx.Client) -> np.ndarray:
    """The one vector of every blank text: [""] through /api/embed."""
    (vector,) = ollama_embed(client, MODEL, [""])
    assert np.linalg.norm(vector) == pytest.approx(1, abs=1e-5)
    return vector


def test_ollama_embeds_blank_list_items(client: httpx.Client, blank: np.ndarray) -> None:
    answer = client.post("/api/embed", json={"model": MODEL, "input": ["a cat", *BLANKS]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    vectors = np.asarray(body["embeddings"], dtype=np.float32)
    assert vectors.shape == (5, 384)
    np.testing.assert_array_equal(vectors[1:], np.tile(blank, (4, 1)))
    assert abs(float(vectors[0] @ blank)) < 0.99, "the text's vector is its own"
    alone = client.post("/api/embed", json={"model": MODEL, "input": ["a cat"]}).json()
    np.testing.assert_array_equal(vectors[:1], np.asarray(alone["embeddings"], dtype=np.float32))
    # Each blank text counts its two special tokens.
    assert body["prompt_eval_count"] == alone["prompt_eval_count"] + 2 * len(BLANKS)


def test_ollama_strings(client: httpx.Client, blank: np.ndarray) -> None:
    spaces = client.post("/api/embed", json={"model": MODEL, "input": "   "}).json()
    np.testing.assert_array_equal(np.asarray(spaces["embeddings"], dtype=np.float32), [blank])
    # "" alone is Ollama's "load the model" request: no vectors.
    assert client.post("/api/embed", json={"model": MODEL, "input": ""}).json()["embeddings"] == []
    legacy = client.post("/api/embeddings", json={"model": MODEL, "prompt": " "})
    assert legacy.status_code == 200 and len(legacy.json()["embedding"]) == 384
    load_only = client.post("/api/embeddings", json={"model": MODEL, "prompt": ""})
    assert load_only.json() == {"embedding": []}


def test_openai_route_embeds_empty_string(client: httpx.Client, blank: np.ndarray) -> None:
    for body in ({"input": ""}, {"input": ["", " "]}):
        answer = client.post(
            "/v1/embeddings", json={"model": MODEL, "encoding_format": "float", **body}
        )
        assert answer.status_code == 200, answer.text
        rows = [row["embedding"] for row in answer.json()["data"]]
        np.testing.assert_allclose(rows, np.tile(blank, (len(rows), 1)), atol=1e-7)


def test_other_families(client: httpx.Client, blank: np.ndarray) -> None:
    tei = client.post("/embed", json={"inputs": ["a cat", " "]})
    assert tei.status_code == 200 and np.asarray(tei.json()).shape == (2, 384)
    assert_tei_error(client.post("/embed", json={"inputs": ""}), 400, "Empty", "inputs is empty")
    native = client.post("/batch", json={"inputs": ["a cat", ""]})
    assert native.status_code == 200, native.text
    cohere = client.post("/v2/embed", json={"model": MODEL, "texts": ["a cat", ""]})
    assert cohere.status_code == 200, cohere.text
    assert len(cohere.json()["embeddings"]["float"]) == 2
    ranked = client.post(
        "/v1/rerank", json={"model": MODEL, "query": "a cat", "documents": ["", "a cat sits"]}
    )
    assert ranked.status_code == 200, ranked.text
    assert ranked.json()["results"][0]["index"] == 1, "the real document ranks above the blank"


def test_clients_with_defaults(
    server: GatewayServer, blank: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> None:
    chunks = ["first chunk", "\n", "third chunk"]
    expected = ollama_embed(httpx.Client(base_url=server.url), MODEL, chunks)
    got = ollama.Client(host=server.url).embed(model=MODEL, input=chunks).embeddings
    np.testing.assert_allclose(got, expected, atol=1e-6)
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    rows = [row.embedding for row in sdk.embeddings.create(model=MODEL, input=chunks).data]
    np.testing.assert_allclose(rows, expected, atol=1e-6)
    # LangChain's defaults send tiktoken ids, and "" for a text without any: the call that used
    # to fail the whole batch with a 400.
    seed_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))
    langchain = OpenAIEmbeddings(model=MODEL, base_url=server.url + "/v1", api_key="unused")  # type: ignore[arg-type]
    vectors = np.asarray(langchain.embed_documents(["first chunk", ""]), dtype=np.float32)
    np.testing.assert_allclose(vectors[0], expected[0], atol=1e-6)
    np.testing.assert_allclose(vectors[1], blank, atol=1e-6)


@pytest.fixture(scope="module")
def bare_tokenizer_server(
    minilm_fp32_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """MiniLM whose tokenizer adds no special tokens: a blank text has no tokens at all."""
    folder = tmp_path_factory.mktemp("bare-tokenizer")
    (folder / "model.onnx").symlink_to(minilm_fp32_dir / "model.onnx")
    tokenizer = json.loads((minilm_fp32_dir / "tokenizer.json").read_text())
    tokenizer["post_processor"] = None
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    registry = write_registry(folder / "registry.yaml", {"bare": minilm_entry(folder)})
    with GatewayServer(registry=registry, env=NO_CACHE) as running:
        yield running


def test_a_text_without_tokens_is_refused(bare_tokenizer_server: GatewayServer) -> None:
    with bare_tokenizer_server.client() as client:
        answer = client.post("/api/embed", json={"model": "bare", "input": ["a cat", " "]})
        assert_ollama_error(answer, 400, "input[1] has no tokens")
        fine = client.post("/api/embed", json={"model": "bare", "input": ["a cat"]})
        assert fine.status_code == 200, fine.text
