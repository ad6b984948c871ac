"""The other wire families people point at the gateway, through the real server: TEI (/embed
with `inputs`, /embed_all, /tokenize, /decode, POST /), Cohere embed (/v1/embed, /v2/embed with
every embedding type), Infinity's unprefixed /embeddings and /models, and Ollama's
/api/generate and /api/chat refusing an embedding model."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer

from tests.support.api import (
    assert_ollama_error,
    assert_openai_error,
    assert_tei_error,
    ollama_embed,
    openai_embed,
)
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
TEXTS = ["a cat sits on the mat", "Zürich ☕ café", "stock markets fell sharply"]


@pytest.fixture(scope="module")
def client(server: GatewayServer) -> httpx.Client:
    with server.client() as http:
        yield http


@pytest.fixture(scope="module")
def vectors(client: httpx.Client) -> np.ndarray:
    return ollama_embed(client, MODEL, TEXTS)


def post(client: httpx.Client, path: str, body: object) -> object:
    response = client.post(path, json=body)
    assert response.status_code == 200, (path, response.text)
    return response.json()


# -- TEI -----------------------------------------------------------------------------------------


def test_tei_embed_is_told_apart_from_the_native_shape(
    client: httpx.Client, vectors: np.ndarray
) -> None:
    tei = post(client, "/embed", {"inputs": TEXTS})
    assert isinstance(tei, list) and len(tei) == 3, "TEI answers a bare list of vectors"
    np.testing.assert_allclose(tei, vectors, atol=1e-6)
    single = post(client, "/embed", {"inputs": TEXTS[0]})
    np.testing.assert_allclose(single, vectors[:1], atol=1e-6)
    native = post(client, "/embed", {"input": TEXTS[0]})
    assert set(native) == {"embedding", "tokens", "time_ms"}, "nomic-api-rs's shape"
    np.testing.assert_allclose(native["embedding"], vectors[0], atol=1e-6)
    root = post(client, "/", {"inputs": TEXTS[:2]})  # TEI answers POST / too
    np.testing.assert_allclose(root, vectors[:2], atol=1e-6)


def test_tei_embed_options(client: httpx.Client, vectors: np.ndarray) -> None:
    raw = client.post("/api/embeddings", json={"model": MODEL, "prompt": TEXTS[0]})
    unnormalized = np.asarray(post(client, "/embed", {"inputs": TEXTS[0], "normalize": False}))
    np.testing.assert_allclose(unnormalized[0], raw.json()["embedding"], atol=1e-5)
    assert abs(np.linalg.norm(unnormalized[0]) - 1) > 1e-3, "really not normalized"
    cut = np.asarray(post(client, "/embed", {"inputs": TEXTS, "dimensions": 37}))
    expected = vectors[:, :37] / np.linalg.norm(vectors[:, :37], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-6)
    long = "word " * 600
    # TEI's statuses and shape: validation 422, an empty input 400 ("Empty").
    too_long = client.post("/embed", json={"inputs": ["ok", long], "truncate": False})
    assert_tei_error(too_long, 422, "Validation", "inputs[1] has 602 tokens")
    bad_item = client.post("/embed", json={"inputs": ["ok", 3]})
    assert_tei_error(bad_item, 422, "Validation", "inputs[1]")
    left = client.post("/embed", json={"inputs": "x", "truncation_direction": "Left"})
    assert_tei_error(left, 422, "Validation", "truncation_direction")
    # As TEI: "" is refused ("Empty"); a blank string is text, and embedded.
    empty = client.post("/embed", json={"inputs": ["ok", ""]})
    assert_tei_error(empty, 400, "Empty", "inputs[1] is empty")
    assert np.asarray(post(client, "/embed", {"inputs": ["ok", " "]})).shape == (2, 384)
    assert_tei_error(client.post("/embed", json={"inputs": []}), 400, "Empty", "inputs")
    root = client.post("/", json={"inputs": ["ok", 3]})
    assert_tei_error(root, 422, "Validation", "inputs[1]")
    # A body that is not TEI's (unreadable, or nomic-api-rs's `input`) keeps the plain shape.
    assert_ollama_error(client.post("/embed", content=b"{oops"), 400, "invalid JSON")
    assert_ollama_error(client.post("/embed", json={"input": 3}), 400, "input")


def test_tei_embed_all_gives_the_token_states_mean_pooled_to_the_vector(
    client: httpx.Client, vectors: np.ndarray
) -> None:
    states = post(client, "/embed_all", {"inputs": TEXTS})
    assert len(states) == 3
    for row, matrix in enumerate(states):
        matrix = np.asarray(matrix)
        assert matrix.shape[1] == 384
        pooled = matrix.mean(axis=0)  # all-minilm: mean pooling, then L2
        np.testing.assert_allclose(pooled / np.linalg.norm(pooled), vectors[row], atol=1e-5)


def test_tei_tokenize_and_decode(client: httpx.Client, default_model_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(default_model_dir / "tokenizer.json"))
    tokenizer.no_padding()  # the published file pads to 128
    tokenizer.no_truncation()
    tokens = post(client, "/tokenize", {"inputs": TEXTS[1]})
    assert len(tokens) == 1
    ids = [token["id"] for token in tokens[0]]
    assert ids == tokenizer.encode(TEXTS[1]).ids
    assert tokens[0][0] == {
        "id": 101,
        "text": "[CLS]",
        "special": True,
        "start": None,
        "stop": None,
    }
    # As TEI: start and stop are UTF-8 byte offsets; text is the token's substring.
    words = [t for t in tokens[0] if not t["special"]]
    encoded = TEXTS[1].encode()
    assert all(encoded[t["start"] : t["stop"]].decode() == t["text"] for t in words)
    assert words[-1]["stop"] == len(encoded)
    accented = post(client, "/tokenize", {"inputs": "Héllo wörld", "add_special_tokens": False})
    spans = [(t["text"], t["start"], t["stop"]) for t in accented[0]]
    assert spans == [("Héllo", 0, 6), ("wörld", 7, 13)]  # TEI's answer
    bare = post(client, "/tokenize", {"inputs": TEXTS, "add_special_tokens": False})
    assert [len(row) for row in bare] == [len(tokenizer.encode(t).ids) - 2 for t in TEXTS]
    decoded = post(client, "/decode", {"ids": [ids, ids[1:-1]]})
    assert decoded == [tokenizer.decode(ids)] * 2
    assert post(client, "/decode", {"ids": ids, "skip_special_tokens": False})[0].startswith(
        "[CLS]"
    )
    refused = client.post("/decode", json={"ids": [[101], [10**9]]})
    assert_tei_error(refused, 422, "Validation", "ids[1] has token id 1000000000")
    assert_tei_error(client.post("/embed_all", json={"inputs": []}), 400, "Empty", "inputs")
    assert_tei_error(client.post("/tokenize", json={}), 422, "Validation", "inputs")


def test_tei_batches_are_refused_as_tei_refuses_them(client: httpx.Client) -> None:
    """/tokenize and /embed_all refuse what /embed refuses, in TEI's statuses: an empty batch
    (400 Empty), more inputs than GATEWAY_MAX_INPUTS (422 Validation), and /embed_all an empty
    string (400 Empty; a blank one is text)."""
    assert_tei_error(client.post("/tokenize", json={"inputs": []}), 400, "Empty", "inputs")
    many = client.post("/tokenize", json={"inputs": ["a"] * 2049})
    assert_tei_error(many, 422, "Validation", "too many inputs: 2049")
    assert_tei_error(client.post("/embed_all", json={"inputs": ""}), 400, "Empty", "inputs")
    empty = client.post("/embed_all", json={"inputs": ["ok", ""]})
    assert_tei_error(empty, 400, "Empty", "inputs[1] is empty")
    assert len(post(client, "/embed_all", {"inputs": " "})) == 1


def test_tei_similarity_is_the_cosine_with_the_source(
    client: httpx.Client, vectors: np.ndarray
) -> None:
    """/similarity (and POST /, as TEI) answer each sentence's cosine with the source sentence,
    the vectors being the ones /api/embed gives; bad bodies get TEI's errors."""
    body = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS}}
    expected = vectors @ vectors[0]
    for path in ("/similarity", "/"):
        scores = post(client, path, body)
        assert isinstance(scores, list) and len(scores) == 3, (path, scores)
        np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert abs(scores[0] - 1.0) < 1e-6 and scores[2] < scores[0]
    prompt = post(client, "/similarity", {**body, "parameters": {"prompt_name": "query"}})
    assert len(prompt) == 3  # all-minilm has no prefixes: a task changes nothing
    np.testing.assert_allclose(prompt, expected, atol=1e-6)
    long = {"source_sentence": "word " * 600, "sentences": ["short", "word " * 600]}
    cut = client.post("/similarity", json={"inputs": long})
    assert cut.status_code == 200, cut.text
    assert cut.headers["x-truncated-inputs"] == "1"  # by index in `sentences`
    assert cut.headers["x-truncated-query"] == "true"  # the source
    whole = {"truncate": False}
    refused = client.post("/similarity", json={"inputs": long, "parameters": whole})
    assert_tei_error(refused, 422, "Validation", "inputs.source_sentence has 602 tokens")
    long["source_sentence"] = "short"
    refused = client.post("/similarity", json={"inputs": long, "parameters": whole})
    assert_tei_error(refused, 422, "Validation", "inputs.sentences[1] has 602 tokens")
    sources = {"source_sentence": TEXTS[0]}
    for path in ("/similarity", "/"):
        empty = client.post(path, json={"inputs": {**sources, "sentences": []}})
        assert_tei_error(empty, 400, "Empty", "inputs.sentences cannot be empty")
        blank = client.post(path, json={"inputs": {**sources, "sentences": ["a", ""]}})
        assert_tei_error(blank, 400, "Empty", "inputs.sentences[1] is empty")
        missing = client.post(path, json={"inputs": sources})
        assert_tei_error(missing, 422, "Validation", "sentences")
    unknown = client.post("/similarity", json={**body, "model": "no-such-model"})
    assert unknown.status_code == 404, unknown.text


# -- Cohere embed --------------------------------------------------------------------------------


def test_cohere_embed_types_by_hand(client: httpx.Client, vectors: np.ndarray) -> None:
    body = {"model": MODEL, "texts": TEXTS, "input_type": "search_document"}
    types = ["float", "int8", "uint8", "binary", "ubinary", "base64"]
    answer = post(client, "/v2/embed", {**body, "embedding_types": types})
    assert answer["response_type"] == "embeddings_by_type" and answer["texts"] == TEXTS
    got = answer["embeddings"]
    assert set(got) == set(types)
    np.testing.assert_allclose(got["float"], vectors, atol=1e-6)
    floats = np.asarray([np.frombuffer(base64.b64decode(s), "<f4") for s in got["base64"]])
    np.testing.assert_allclose(floats, vectors, atol=1e-7)
    int8 = np.asarray(got["int8"])
    assert int8.min() >= -128 and int8.max() <= 127 and np.abs(int8).max(axis=1).min() == 127
    np.testing.assert_array_equal(np.asarray(got["uint8"]), int8 + 128)
    cos = np.sum(int8 * vectors, axis=1) / np.linalg.norm(int8, axis=1)
    assert cos.min() > 0.999, cos
    ubinary = np.asarray(got["ubinary"], dtype=np.uint8)
    assert ubinary.shape == (3, 48), "384 bits packed into 48 bytes"
    np.testing.assert_array_equal(np.unpackbits(ubinary, axis=1), (vectors > 0).astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(got["binary"]), ubinary.astype(int) - 128)
    v1 = post(client, "/v1/embed", {"texts": TEXTS})  # v1, no model, no types: floats
    assert v1["response_type"] == "embeddings_floats"
    np.testing.assert_allclose(v1["embeddings"], vectors, atol=1e-6)


def test_cohere_embed_errors(client: httpx.Client) -> None:
    for fields, fragment in (
        ({"texts": ["a"], "embedding_types": ["float", "int4"]}, "embedding_types[1]"),
        ({"texts": ["a"], "input_type": "poem"}, "input_type"),
        ({"texts": ["a"], "truncate": "START"}, "truncate"),
        ({"texts": ["a"], "output_dimension": 1000}, "output_dimension must be"),
        ({}, "exactly one of texts"),
    ):
        response = client.post("/v2/embed", json={"model": MODEL, **fields})
        assert_openai_error(response, 400, fragment)
    assert_openai_error(client.post("/v2/embed", json={"texts": ["a"]}), 400, "model is required")


def test_cohere_embed_max_tokens(client: httpx.Client) -> None:
    """v2's max_tokens cuts each input to that many tokens (special tokens counted, as Ollama's
    num_ctx), reported in X-Truncated-Inputs; with truncate NONE a longer input is a 400."""
    long_text = "the quick brown fox jumps over the lazy dog " * 4
    body = {"model": MODEL, "texts": [long_text, "short"], "embedding_types": ["float"]}
    capped = client.post("/v2/embed", json={**body, "max_tokens": 8})
    assert capped.status_code == 200, capped.text
    assert capped.headers["X-Truncated-Inputs"] == "0"
    assert capped.json()["meta"]["billed_units"]["input_tokens"] == 8 + 3
    reference = post(
        client, "/api/embed", {"model": MODEL, "input": [long_text], "options": {"num_ctx": 8}}
    )
    np.testing.assert_allclose(
        capped.json()["embeddings"]["float"][0], reference["embeddings"][0], atol=1e-6
    )
    whole = post(client, "/v2/embed", body)["embeddings"]["float"][0]
    assert np.abs(np.asarray(whole) - reference["embeddings"][0]).max() > 1e-3
    refused = client.post("/v2/embed", json={**body, "max_tokens": 8, "truncate": "NONE"})
    assert_openai_error(refused, 400, "texts[0]", "8 tokens")
    assert_openai_error(client.post("/v2/embed", json={**body, "max_tokens": 1}), 400, "max_tokens")


# -- Infinity and Ollama -------------------------------------------------------------------------


def test_infinity_root_paths(client: httpx.Client, vectors: np.ndarray) -> None:
    response = client.post("/embeddings", json={"model": MODEL, "input": TEXTS})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(openai_embed(client, MODEL, TEXTS), vectors, atol=1e-6)
    rows = [row["embedding"] for row in response.json()["data"]]
    np.testing.assert_allclose(rows, vectors, atol=1e-6)
    models = client.get("/models").json()
    assert models["object"] == "list" and f"{MODEL}:latest" in [m["id"] for m in models["data"]]
    missing = client.post("/embeddings", json={"model": "nope", "input": "x"})
    assert_openai_error(missing, 404, "nope", code="model_not_found")


def test_generate_and_chat_are_refused_as_ollama_refuses_them(client: httpx.Client) -> None:
    for path, capability in (("/api/generate", "generate"), ("/api/chat", "chat")):
        response = client.post(path, json={"model": MODEL, "prompt": "hi", "stream": False})
        assert_ollama_error(response, 400, f'"{MODEL}" does not support {capability}')
        response = client.post(path, json={"model": "llama3"})
        assert_ollama_error(response, 404, "llama3")
