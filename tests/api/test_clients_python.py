"""The Python clients with their default settings against the real server, each checked against
the vectors of a raw POST /api/embed: ollama, openai, LangChain (Ollama and OpenAI),
cohere v1 and v2 (embed and rerank), llama-index (Ollama and OpenAI) and huggingface_hub's
InferenceClient.feature_extraction on the TEI shape. The versions are printed at the end."""

from __future__ import annotations

from importlib.metadata import version

import cohere
import numpy as np
import ollama
import openai
import pytest
from huggingface_hub import InferenceClient
from langchain_ollama import OllamaEmbeddings
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.ollama import OllamaEmbedding
from llama_index.embeddings.openai import OpenAIEmbedding

from tests.support.api import ollama_embed
from tests.support.tiktoken_cache import seed_tiktoken_cache
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
TEXTS = ["a cat sits on the mat", "Zürich ☕ café", "stock markets fell sharply"]
RESULTS: dict[str, str] = {}


@pytest.fixture(scope="module")
def vectors(server: GatewayServer) -> np.ndarray:
    with server.client() as client:
        return ollama_embed(client, MODEL, TEXTS)


@pytest.fixture(scope="module", autouse=True)
def report(tmp_path_factory: pytest.TempPathFactory) -> object:
    seed_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))  # LangChain's OpenAIEmbeddings
    yield
    print("\nPython clients:")
    for name, result in RESULTS.items():
        print(f"  {name:32} {version(name):10} {result}")


def same(got: object, want: np.ndarray, package: str, what: str) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), want, atol=1e-6)
    RESULTS[package] = ", ".join(filter(None, [RESULTS.get(package), f"{what}: ok"]))


def test_ollama(server: GatewayServer, vectors: np.ndarray) -> None:
    client = ollama.Client(host=server.url)
    same(client.embed(model=MODEL, input=TEXTS).embeddings, vectors, "ollama", "embed")
    assert MODEL + ":latest" in [m.model for m in client.list().models]
    assert client.show(MODEL).modelinfo is not None


def test_openai(server: GatewayServer, vectors: np.ndarray) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    rows = [d.embedding for d in client.embeddings.create(model=MODEL, input=TEXTS).data]
    same(rows, vectors, "openai", "embeddings (base64 default)")


def test_langchain_both(server: GatewayServer, vectors: np.ndarray) -> None:
    ollama_lc = OllamaEmbeddings(model=MODEL, base_url=server.url)
    same(ollama_lc.embed_documents(TEXTS), vectors, "langchain-ollama", "OllamaEmbeddings")
    openai_lc = OpenAIEmbeddings(model=MODEL, base_url=server.url + "/v1", api_key="unused")  # type: ignore[arg-type]
    # Defaults: tiktoken ids on the wire, decoded by the gateway; the text's vectors up to
    # float rounding of the decoded text (identical here).
    got = np.asarray(openai_lc.embed_documents(TEXTS), dtype=np.float32)
    assert (np.sum(got * vectors, axis=1) >= 0.99999).all()
    RESULTS["langchain-openai"] = "OpenAIEmbeddings (token ids, defaults): ok"


def test_cohere_v1_and_v2(server: GatewayServer, vectors: np.ndarray) -> None:
    v1 = cohere.Client(base_url=server.url, api_key="unused")
    same(v1.embed(texts=TEXTS, model=MODEL).embeddings, vectors, "cohere", "v1 embed")
    v2 = cohere.ClientV2(base_url=server.url, api_key="unused")
    answer = v2.embed(
        texts=TEXTS, model=MODEL, input_type="search_document", embedding_types=["float", "int8"]
    )
    same(answer.embeddings.float_, vectors, "cohere", "v2 embed")
    assert np.asarray(answer.embeddings.int8).shape == (3, 384)
    ranked = v2.rerank(model=MODEL, query="a kitten", documents=TEXTS)
    assert ranked.results[0].index == 0
    assert all(0 <= r.relevance_score <= 1 for r in ranked.results)
    RESULTS["cohere"] += ", v2 rerank: ok"


def test_llama_index_both(server: GatewayServer, vectors: np.ndarray) -> None:
    ollama_li = OllamaEmbedding(model_name=MODEL, base_url=server.url)
    same(
        ollama_li.get_text_embedding_batch(TEXTS),
        vectors,
        "llama-index-embeddings-ollama",
        "OllamaEmbedding",
    )
    # OpenAIEmbedding validates `model` against OpenAI's names client-side; `model_name` is its
    # documented way to use another server's model.
    openai_li = OpenAIEmbedding(model_name=MODEL, api_base=server.url + "/v1", api_key="unused")
    same(
        openai_li.get_text_embedding_batch(TEXTS),
        vectors,
        "llama-index-embeddings-openai",
        "OpenAIEmbedding(model_name=...)",
    )


def test_huggingface_hub_feature_extraction(server: GatewayServer, vectors: np.ndarray) -> None:
    client = InferenceClient(model=server.url)  # posts TEI's {"inputs": ...} to the URL itself
    same(client.feature_extraction(TEXTS[0]), vectors[:1], "huggingface_hub", "feature_extraction")
    scores = client.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:])
    assert scores == pytest.approx(list(vectors[1:] @ vectors[0]), abs=1e-6), scores
    cut = client.feature_extraction(TEXTS[1], dimensions=64, normalize=True)
    assert cut.shape == (1, 64)
