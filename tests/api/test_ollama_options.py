"""Ollama's options and names on /api/embed through the real server: num_ctx caps the context,
truncate: false accepts what Ollama's all-minilm accepts (512 positions) and names what it
refuses, prompt_eval_count counts the tokens used, unknown options are ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import ollama
import pytest
from tokenizers import Tokenizer

from tests.support.api import assert_ollama_error, assert_openai_error, ollama_embed
from tools.corpus import text_of_tokens
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
# One word-piece per word in all-MiniLM's vocabulary: [CLS] + 12 words + [SEP].
WORDS = "the cat sat on the mat and the dog ran far away"
LANGCHAIN_NULL_OPTIONS = dict.fromkeys(
    [
        "mirostat",
        "mirostat_eta",
        "mirostat_tau",
        "num_ctx",
        "num_gpu",
        "num_thread",
        "repeat_last_n",
        "repeat_penalty",
        "temperature",
        "stop",
        "tfs_z",
        "top_k",
        "top_p",
    ]
)


@pytest.fixture(scope="module")
def count(default_model_dir: Path) -> Callable[[str], int]:
    tokenizer = Tokenizer.from_file(str(default_model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text).ids)


def embed(client: httpx.Client, **body: object) -> dict:
    response = client.post("/api/embed", json={"model": MODEL, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_num_ctx_cuts_to_the_first_tokens(server: GatewayServer, count: Callable) -> None:
    assert count(WORDS) == 14
    with server.client() as client:
        full = embed(client, input=[WORDS])  # also fills the cache with the uncut vector
        cut = embed(client, input=[WORDS, "a cat"], options={"num_ctx": 8})
        prefix = embed(client, input=["the cat sat on the mat"])  # the 6 words that fit
    assert full["prompt_eval_count"] == 14
    assert cut["prompt_eval_count"] == 8 + 4, "tokens used: 8 after the cut, 4 for 'a cat'"
    np.testing.assert_allclose(cut["embeddings"][0], prefix["embeddings"][0], atol=1e-6)
    assert np.dot(cut["embeddings"][0], full["embeddings"][0]) < 0.99, "the cut changes it"


def test_num_ctx_with_truncate_false_names_the_input(server: GatewayServer) -> None:
    with server.client() as client:
        body = {"input": ["a cat", WORDS], "options": {"num_ctx": 8}, "truncate": False}
        response = client.post("/api/embed", json={"model": MODEL, **body})
        assert_ollama_error(
            response,
            400,
            "input[1] has 14 tokens",
            "context length of 8 tokens",
            "the input length exceeds the context length",
        )
        fits = embed(client, input=["a cat"], options={"num_ctx": 8}, truncate=False)
        assert fits["prompt_eval_count"] == 4
        # num_ctx above the model's own context changes nothing.
        large = embed(client, input=[WORDS], options={"num_ctx": 100_000})
        assert large["prompt_eval_count"] == 14


def test_truncate_false_accepts_ollamas_512_positions(
    server: GatewayServer, count: Callable
) -> None:
    """Ollama's all-minilm accepts 512 positions with truncate: false; truncate: true still cuts
    at the 256 tokens the model was trained at."""
    long = text_of_tokens(400, count, seed=1)
    too_long = text_of_tokens(520, count, seed=2)
    with server.client() as client:
        whole = embed(client, input=[long], truncate=False)
        assert whole["prompt_eval_count"] == 400
        cut = client.post("/api/embed", json={"model": MODEL, "input": [long]})
        assert cut.json()["prompt_eval_count"] == 256
        assert cut.headers["x-truncated-inputs"] == "0"
        assert np.dot(whole["embeddings"][0], cut.json()["embeddings"][0]) < 0.9999
        body = {"model": MODEL, "input": ["short", too_long], "truncate": False}
        assert_ollama_error(
            client.post("/api/embed", json=body), 400, "input[1] has 520 tokens", "512 tokens"
        )
        assert_openai_error(
            client.post("/v1/embeddings", json=body), 400, "input[1] has 520 tokens", param="input"
        )


def test_unknown_and_null_options_are_ignored(server: GatewayServer) -> None:
    with server.client() as client:
        plain = ollama_embed(client, MODEL, [WORDS])
        odd = {"temperature": 0.7, "num_thread": 2, "seed": 3, "made_up": {"x": [1]}}
        for options in (odd, LANGCHAIN_NULL_OPTIONS, {"num_ctx": 512.0}):
            np.testing.assert_array_equal(
                ollama_embed(client, MODEL, [WORDS], options=options), plain
            )
        for bad in ("abc", 2, -1, True, 8.5):
            response = client.post(
                "/api/embed", json={"model": MODEL, "input": "hi", "options": {"num_ctx": bad}}
            )
            assert_ollama_error(response, 400, "options.num_ctx", "at least 3")


def test_model_names_resolve_as_ollama_resolves_them(server: GatewayServer) -> None:
    with server.client() as client:
        plain = ollama_embed(client, MODEL, ["hello"])
        for name in (
            "all-minilm:latest",
            "ALL-MiniLM",
            "all-minilm:l6-v2",
            "all-minilm:22m",
            "library/all-minilm",
            "registry.ollama.ai/library/all-minilm:latest",
        ):
            response = client.post("/api/embed", json={"model": name, "input": ["hello"]})
            assert response.status_code == 200, (name, response.text)
            assert response.json()["model"] == name, "the name is echoed as sent"
            served = np.asarray(response.json()["embeddings"], dtype=np.float32)
            np.testing.assert_array_equal(served, plain)
        missing = client.post("/api/embed", json={"model": "all-minilm:33m", "input": "x"})
        assert_ollama_error(missing, 404, "all-minilm:33m", "not found")


def test_ollama_client_with_num_ctx_and_legacy_route(server: GatewayServer) -> None:
    client = ollama.Client(host=server.url)
    short = client.embed(model=MODEL, input=WORDS, options={"num_ctx": 8})
    assert short.prompt_eval_count == 8
    legacy = client.embeddings(model=MODEL, prompt=WORDS, options={"num_ctx": 8})
    unnormalized = np.asarray(legacy.embedding)
    np.testing.assert_allclose(
        unnormalized / np.linalg.norm(unnormalized), short.embeddings[0], atol=1e-6
    )
