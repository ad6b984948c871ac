"""Ollama's API on the real server, through the `ollama` client, LangChain and raw HTTP.

Values are checked, not just shapes: client vectors equal the raw-HTTP ones, and those sit at the
cosines measured for all-MiniLM's int8 weights outside this project
(cat/kitten 0.6059, cat/stock 0.0773).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import ollama
import pytest
import yaml
from langchain_ollama import OllamaEmbeddings

from tests.support.api import ollama_embed
from tools.gateway_server import GatewayServer
from tools.paths import REPO

MODEL = "all-minilm"
CAT, KITTEN, STOCK = "a cat sits on the mat", "a kitten is on the rug", "stock market crash"


def shipped_sha256() -> str:
    registry = yaml.safe_load((REPO / "registry.yaml").read_text())
    return registry["models"][MODEL]["files"]["model"]["sha256"]


@pytest.fixture(scope="module")
def raw(server: GatewayServer) -> np.ndarray:
    """Vectors of CAT, KITTEN, STOCK from a plain POST /api/embed."""
    with server.client() as client:
        return ollama_embed(client, MODEL, [CAT, KITTEN, STOCK])


def test_raw_vectors_match_published_int8_similarities(raw: np.ndarray) -> None:
    assert raw.shape == (3, 384)
    assert np.allclose(np.linalg.norm(raw, axis=1), 1, atol=1e-5), "/api/embed normalizes"
    assert abs(float(raw[0] @ raw[1]) - 0.6059) < 0.002
    assert abs(float(raw[0] @ raw[2]) - 0.0773) < 0.002


def test_root_and_version(server: GatewayServer) -> None:
    with server.client() as client:
        root = client.get("/")
        assert root.status_code == 200
        assert root.text == "Ollama is running"
        assert root.headers["content-type"].startswith("text/plain")
        head = client.head("/")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/plain")
        version = client.get("/api/version")
        assert version.status_code == 200
        assert re.fullmatch(r"\d+\.\d+\.\d+", version.json()["version"]), version.text
        assert client.head("/api/tags").status_code == 200
        version_head = client.head("/api/version")
        assert version_head.status_code == 200 and version_head.content == b""


def test_embed_with_ollama_client(server: GatewayServer, raw: np.ndarray) -> None:
    client = ollama.Client(host=server.url)
    response = client.embed(model=MODEL, input=[CAT, KITTEN, STOCK])
    assert response.model == MODEL
    np.testing.assert_array_equal(np.asarray(response.embeddings, np.float32), raw)
    # [CLS] + 6 word pieces + [SEP], twice 8, and [CLS] stock market crash [SEP].
    assert response.prompt_eval_count == 8 + 8 + 5
    assert response.total_duration and response.total_duration > 0
    assert response.load_duration is not None

    single = client.embed(model=MODEL, input=CAT, dimensions=384, truncate=False, keep_alive="5m")
    np.testing.assert_array_equal(np.asarray(single.embeddings, np.float32), raw[:1])


@pytest.mark.parametrize("dimensions", [0, -1, 384, 385, 768, 4096])
def test_unusable_dimensions_are_ignored_as_ollama_ignores_them(
    server: GatewayServer, raw: np.ndarray, dimensions: int
) -> None:
    """Ollama slices only when 0 < dimensions < width; any other integer gives the full vector
    (a config written for a wider model keeps working). /v1/embeddings still refuses them."""
    answer = ollama.Client(host=server.url).embed(model=MODEL, input=CAT, dimensions=dimensions)
    np.testing.assert_array_equal(np.asarray(answer.embeddings, np.float32), raw[:1])


def test_legacy_embeddings_with_ollama_client(server: GatewayServer, raw: np.ndarray) -> None:
    """/api/embeddings: one prompt, and (like Ollama) not L2-normalized."""
    client = ollama.Client(host=server.url)
    vector = np.asarray(client.embeddings(model=MODEL, prompt=CAT).embedding)
    assert vector.shape == (384,)
    norm = np.linalg.norm(vector)
    assert abs(norm - 1) > 0.05, f"legacy vectors are raw mean-pooled, norm {norm}"
    np.testing.assert_allclose(vector / norm, raw[0], atol=1e-6)
    assert client.embeddings(model=MODEL, prompt="").embedding == []


def test_list_with_ollama_client(server: GatewayServer, default_model_dir: Path) -> None:
    listed = {m.model: m for m in ollama.Client(host=server.url).list().models}
    model = listed[f"{MODEL}:latest"]
    files = [default_model_dir / "model.onnx", default_model_dir / "tokenizer.json"]
    assert model.size == sum(f.stat().st_size for f in files)
    assert model.digest == shipped_sha256()
    assert model.details is not None
    assert model.details.format == "onnx"
    assert model.details.family == "bert"
    assert model.details.parameter_size == "23M"
    assert model.details.quantization_level == "Q8_0"
    assert isinstance(model.modified_at, datetime)


def test_tags_wire_format(server: GatewayServer) -> None:
    """n8n reads models[].name, ollama-python models[].model: both, identical, with a tag."""
    with server.client() as client:
        response = client.get("/api/tags")
    assert response.status_code == 200
    models = response.json()["models"]
    assert models, "the pulled default model is listed"
    for entry in models:
        assert entry["name"] == entry["model"] and ":" in entry["name"], entry
        assert isinstance(entry["size"], int) and entry["size"] > 0
        assert re.fullmatch(r"[0-9a-f]{64}", entry["digest"]), entry["digest"]
        datetime.fromisoformat(entry["modified_at"].replace("Z", "+00:00"))
        assert set(entry["details"]) >= {
            "parent_model",
            "format",
            "family",
            "families",
            "parameter_size",
            "quantization_level",
        }
    # Registry entries whose files are not pulled are not listed, as in Ollama.
    assert "nomic-embed-text:latest" not in {m["name"] for m in models}


def test_show_with_ollama_client(server: GatewayServer) -> None:
    shown = ollama.Client(host=server.url).show(MODEL)
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo is not None
    assert shown.modelinfo["bert.embedding_length"] == 384
    assert shown.modelinfo["bert.context_length"] == 256
    assert shown.details is not None and shown.details.family == "bert"


def test_show_wire_format(server: GatewayServer) -> None:
    with server.client() as client:
        by_model = client.post("/api/show", json={"model": "all-minilm:l6-v2"})
        by_name = client.post("/api/show", json={"name": "ALL-MINILM"})  # deprecated spelling
    for response in (by_model, by_name):
        assert response.status_code == 200, response.text
        body = response.json()
        assert "model_info" in body and "capabilities" in body, body
        assert body["capabilities"] == ["embedding"]
        assert body["model_info"]["general.architecture"] == "bert"


@pytest.mark.parametrize("name", ["All-MiniLM:latest", "all-minilm:latest", "ALL-MINILM"])
def test_model_name_is_echoed_as_sent(server: GatewayServer, raw: np.ndarray, name: str) -> None:
    with server.client() as client:
        response = client.post("/api/embed", json={"model": name, "input": [CAT]})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == name
    np.testing.assert_array_equal(np.asarray(response.json()["embeddings"], np.float32), raw[:1])


@pytest.mark.parametrize("body", [{"input": ""}, {"input": []}, {}], ids=["empty", "list", "none"])
def test_empty_input_loads_and_returns_no_embeddings(server: GatewayServer, body: dict) -> None:
    with server.client() as client:
        response = client.post("/api/embed", json={"model": "All-MiniLM", **body})
    assert response.status_code == 200, response.text
    assert response.json() == {"model": "All-MiniLM", "embeddings": []}


@pytest.mark.parametrize("keep_alive", [300, 0.5, "5m", "1h30m", "300ms", "-1m", -1, None])
def test_keep_alive_forms_are_accepted(server: GatewayServer, keep_alive: object) -> None:
    with server.client() as client:
        response = client.post(
            "/api/embed", json={"model": MODEL, "input": "hi", "keep_alive": keep_alive}
        )
    assert response.status_code == 200, response.text


def test_keep_alive_zero_unloads_after_the_request(server: GatewayServer, raw: np.ndarray) -> None:
    with server.client() as client:
        first = ollama_embed(client, MODEL, [CAT], keep_alive=0)
        deadline = time.monotonic() + 60  # generous: only a model that never unloads fails
        while client.get("/health").json()["models"][MODEL] == "loaded":
            assert time.monotonic() < deadline, "keep_alive 0 did not unload the model"
            time.sleep(0.05)
        assert client.get("/health").json()["models"][MODEL] == "ready"
        again = ollama_embed(client, MODEL, [CAT])
        assert client.get("/health").json()["models"][MODEL] == "loaded", "loaded again"
    np.testing.assert_array_equal(first, raw[:1])
    np.testing.assert_array_equal(again, raw[:1])


def test_langchain_ollama_embeddings(server: GatewayServer, raw: np.ndarray) -> None:
    """LangChain sends a dozen null `options` and checks /api/tags on init."""
    embeddings = OllamaEmbeddings(model=MODEL, base_url=server.url, validate_model_on_init=True)
    documents = np.asarray(embeddings.embed_documents([CAT, KITTEN]), np.float32)
    query = np.asarray(embeddings.embed_query(STOCK), np.float32)
    np.testing.assert_array_equal(documents, raw[:2])
    np.testing.assert_array_equal(query, raw[2])


def test_ollama_client_raises_response_error_with_message(server: GatewayServer) -> None:
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as caught:
        client.embed(model="no-such-model", input="hi")
    assert caught.value.status_code == 404
    assert "no-such-model" in caught.value.error and "not found" in caught.value.error
