"""The JavaScript clients with their default settings against the real server: ollama (embed,
list, show, ps, pull streaming), openai (base64 by default, dimensions), @langchain/ollama's
OllamaEmbeddings (truncate: false by default, as n8n uses it) and @langchain/openai's
OpenAIEmbeddings. Each must give the vectors the server gives over raw HTTP."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.api import ollama_embed
from tests.support.node import ensure_js_clients, run_client
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
TEXTS = ["a cat sits on the mat", "Zürich ☕ café", "stock markets fell sharply"]
VERSIONS: dict[str, str] = {}


@pytest.fixture(scope="module")
def node() -> str:
    return ensure_js_clients()


@pytest.fixture(scope="module")
def vectors(server: GatewayServer) -> np.ndarray:
    with server.client() as client:
        return ollama_embed(client, MODEL, TEXTS)


@pytest.fixture(scope="module", autouse=True)
def print_versions() -> object:
    yield
    print("\nJavaScript clients: " + ", ".join(f"{k} {v}" for k, v in VERSIONS.items()))


def test_ollama_js(node: str, server: GatewayServer, vectors: np.ndarray) -> None:
    got = run_client(node, "ollama", server.url, MODEL)
    VERSIONS["ollama"] = got["version"]
    np.testing.assert_allclose(got["embeddings"], vectors, atol=1e-6)
    assert got["prompt_eval_count"] > len(TEXTS)
    single = np.asarray(got["single"])
    assert single.shape == (128,)
    np.testing.assert_allclose(
        single, vectors[0, :128] / np.linalg.norm(vectors[0, :128]), atol=1e-6
    )
    assert f"{MODEL}:latest" in got["listed"]
    assert got["show"]["capabilities"] == ["embedding"]
    assert got["show"]["model_info"]["bert.embedding_length"] == 384
    assert f"{MODEL}:latest" in got["ps"], "the model just used is loaded"
    assert got["pulled"][-1] == "success", got["pulled"]
    assert got["missing"]["status"] == 404 and "no-such-model" in got["missing"]["message"]


def test_openai_node(node: str, server: GatewayServer, vectors: np.ndarray) -> None:
    got = run_client(node, "openai", server.url, MODEL)
    VERSIONS["openai"] = got["version"]
    # openai-node asks for base64 and decodes it without checking the type: floats would
    # arrive as garbage of a quarter of the width.
    np.testing.assert_allclose(got["embeddings"], vectors, atol=1e-6)
    cut = np.asarray(got["cut"])
    assert cut.shape == (3, 37)
    expected = vectors[:, :37] / np.linalg.norm(vectors[:, :37], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-6)
    assert got["usage"]["prompt_tokens"] > len(TEXTS)


def test_langchain_ollama_js(node: str, server: GatewayServer, vectors: np.ndarray) -> None:
    got = run_client(node, "langchain-ollama", server.url, MODEL)
    VERSIONS["@langchain/ollama"] = got["version"]
    np.testing.assert_allclose(got["documents"], vectors, atol=1e-6)
    np.testing.assert_allclose(got["query"], vectors[2], atol=1e-6)
    # truncate: false (its default) with a ~400-token chunk: accepted, as Ollama's all-minilm
    # accepts up to 512 positions; n8n would otherwise retry a 400 six times and fail.
    assert got["long"] == 384


def test_langchain_openai_js(node: str, server: GatewayServer, vectors: np.ndarray) -> None:
    got = run_client(node, "langchain-openai", server.url, MODEL)
    VERSIONS["@langchain/openai"] = got["version"]
    np.testing.assert_allclose(got["documents"], vectors, atol=1e-6)
    np.testing.assert_allclose(got["query"], vectors[2], atol=1e-6)
