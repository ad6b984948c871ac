"""TEI's POST /embed_sparse through the real server, with the tiny random SPLADE of
tools/splade.py beside all-MiniLM: TEI's shape and statuses, the truncation header, the
sentence-transformers reference reached over the wire, and every other route family refusing a
sparse model in its own error shape (and /embed_sparse refusing a dense one). Last, the
registry's own splade-pp-en entry, pulled from a local hub (HF_ENDPOINT) that holds the tiny
model in its repositories' layout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.support.api import assert_ollama_error, assert_openai_error, assert_tei_error
from tools.gateway_server import GatewayServer
from tools.hf_server import LocalHub
from tools.models import minilm_entry, write_registry
from tools.paths import REPO
from tools.splade import (
    LONG,
    MAX_TOKENS,
    TEXTS,
    sentence_transformers_weights,
    splade_dir,
    splade_entry,
)

SPARSE = "tiny-splade"
MINILM = "all-minilm"
ATOL = RTOL = 1e-5  # as tests/parity/test_splade_parity.py, which says why


@pytest.fixture(scope="module")
def model_dir(default_model_dir: Path) -> Path:
    return splade_dir(default_model_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def server(
    model_dir: Path, default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """all-minilm is the default model; the SPLADE model is the registry's only sparse one."""
    registry = write_registry(
        tmp_path_factory.mktemp("sparse") / "registry.yaml",
        {MINILM: minilm_entry(default_model_dir), SPARSE: splade_entry(model_dir)},
    )
    with GatewayServer(registry=registry) as running:
        yield running


@pytest.fixture
def client(server: GatewayServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def sparse(client: httpx.Client, body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    response = client.post("/embed_sparse", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer, list)
    return answer


def dense(rows: list[list[dict[str, Any]]], vocab: int = 30522) -> np.ndarray:
    """TEI's pairs -> [inputs, vocab] float32, checking each pair's shape on the way."""
    out = np.zeros((len(rows), vocab), dtype=np.float32)
    for row, pairs in enumerate(rows):
        indices = [pair["index"] for pair in pairs]
        assert all(list(pair) == ["index", "value"] for pair in pairs)
        assert indices == sorted(set(indices)), "indices ascending, each once"
        assert all(isinstance(pair["value"], float) and pair["value"] > 0 for pair in pairs)
        out[row, indices] = [pair["value"] for pair in pairs]
    return out


def test_embed_sparse_matches_sentence_transformers(client: httpx.Client, model_dir: Path) -> None:
    texts = [t for i, t in enumerate(TEXTS) if i != LONG]
    ours = dense(sparse(client, {"inputs": texts}))  # no model: the registry's sparse model
    reference = sentence_transformers_weights(model_dir, texts, MAX_TOKENS)
    for row in range(len(texts)):
        assert np.flatnonzero(ours[row]).tolist() == np.flatnonzero(reference[row]).tolist()
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=ATOL)
    named = dense(sparse(client, {"inputs": texts, "model": SPARSE}))
    assert np.array_equal(named, ours)


def test_a_single_string_is_a_batch_of_one_and_alone_equals_batched(
    client: httpx.Client,
) -> None:
    batched = dense(sparse(client, {"inputs": TEXTS}))
    for row, text in enumerate(TEXTS):
        answer = sparse(client, {"inputs": text})
        assert len(answer) == 1
        (alone,) = dense(answer)
        assert np.flatnonzero(alone).tolist() == np.flatnonzero(batched[row]).tolist()
        np.testing.assert_allclose(alone, batched[row], rtol=RTOL, atol=0)


def test_truncated_inputs_are_named_and_refused_without_truncate(client: httpx.Client) -> None:
    response = client.post("/embed_sparse", json={"inputs": TEXTS})
    assert response.status_code == 200
    assert response.headers["x-truncated-inputs"] == str(LONG)
    fits = client.post("/embed_sparse", json={"inputs": TEXTS[0], "truncate": False})
    assert fits.status_code == 200 and "x-truncated-inputs" not in fits.headers
    refused = client.post("/embed_sparse", json={"inputs": TEXTS, "truncate": False})
    assert_tei_error(refused, 422, "Validation", f"inputs[{LONG}]", str(MAX_TOKENS), "truncate")
    single = client.post("/embed_sparse", json={"inputs": TEXTS[LONG], "truncate": False})
    assert_tei_error(single, 422, "Validation", "inputs has 162 tokens")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"inputs": []}, "inputs cannot be empty"),
        ({"inputs": ""}, "inputs is empty"),
        ({"inputs": ["ok", ""]}, "inputs[1] is empty"),
    ],
)
def test_empty_input_is_teis_empty(client: httpx.Client, body: dict[str, Any], where: str) -> None:
    assert_tei_error(client.post("/embed_sparse", json=body), 400, "Empty", where)


def test_bad_bodies_are_teis_validation_errors(client: httpx.Client) -> None:
    left = {"inputs": "x", "truncation_direction": "left"}
    assert_tei_error(client.post("/embed_sparse", json=left), 422, "Validation", "right")
    assert_tei_error(client.post("/embed_sparse", json={"inputs": 3}), 422, "Validation")
    assert_tei_error(client.post("/embed_sparse", json={}), 422, "Validation", "inputs")
    unknown = {"inputs": "x", "model": "no-such-model"}
    assert_tei_error(client.post("/embed_sparse", json=unknown), 404, "Validation", "not found")
    prompt = {"inputs": "x", "prompt_name": "nope"}
    assert_tei_error(client.post("/embed_sparse", json=prompt), 422, "Validation", "prompt_name")


def test_a_dense_model_on_embed_sparse_names_the_sparse_ones(client: httpx.Client) -> None:
    response = client.post("/embed_sparse", json={"inputs": "x", "model": MINILM})
    assert_tei_error(response, 422, "Validation", "cannot give sparse vectors", SPARSE)


SPARSE_HINT = "/embed_sparse"


def test_each_embedding_family_refuses_a_sparse_model_in_its_shape(client: httpx.Client) -> None:
    ollama = client.post("/api/embed", json={"model": SPARSE, "input": "x"})
    assert_ollama_error(ollama, 400, "cannot embed", SPARSE_HINT)
    legacy = client.post("/api/embeddings", json={"model": SPARSE, "prompt": "x"})
    assert_ollama_error(legacy, 400, SPARSE_HINT)
    body = {"model": SPARSE, "input": "x"}
    for path in ("/v1/embeddings", "/embeddings"):
        assert_openai_error(client.post(path, json=body), 400, SPARSE_HINT, param="model")
    cohere = {"model": SPARSE, "texts": ["x"], "input_type": "search_document"}
    for path in ("/v1/embed", "/v2/embed"):
        assert_openai_error(client.post(path, json=cohere), 400, SPARSE_HINT)
    tei = {"inputs": "x", "model": SPARSE}
    for path in ("/embed", "/embed_all"):
        assert_tei_error(client.post(path, json=tei), 422, "Validation", SPARSE_HINT)
    similarity = {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "model": SPARSE}
    assert_tei_error(client.post("/similarity", json=similarity), 422, "Validation", SPARSE_HINT)
    # Rerank takes it (by the dot product): tests/api/test_sparse_rerank_api.py.


def test_the_tokenizer_routes_and_show_serve_a_sparse_model(client: httpx.Client) -> None:
    tokens = client.post("/tokenize", json={"inputs": "hello", "model": SPARSE})
    assert tokens.status_code == 200, tokens.text
    assert [t["text"] for t in tokens.json()[0] if not t["special"]] == ["hello"]
    shown = client.post("/api/show", json={"model": SPARSE})
    assert shown.status_code == 200, shown.text
    info = shown.json()["model_info"]
    assert info["gateway.kind"] == "sparse"
    assert (info["gateway.pooling"], info["gateway.activation"]) == ("max", "relu")
    assert shown.json()["capabilities"] == []


def test_the_shipped_entry_pulls_from_the_hub_and_serves(model_dir: Path, tmp_path: Path) -> None:
    """registry.yaml's splade-pp-en as it ships, its files (from two repositories) served by the
    local hub at the paths the entry names, the tiny model standing in for the real weights."""
    shipped = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]["splade-pp-en"]
    stand_ins = {"model": model_dir / "model.onnx", "tokenizer": model_dir / "tokenizer.json"}
    entry = dict(shipped)
    asked = set()
    with LocalHub() as hub:
        files: dict[str, Any] = {}
        for role, ref in shipped["files"].items():
            source = ref.get("source", shipped["source"])
            match = re.fullmatch(r"hf://([^@]+)@([0-9a-f]{40})", source)
            assert match, source
            repo_id, _ = match.groups()
            commit = hub.commit(repo_id, {ref["path"]: stand_ins[role]})
            asked.add((repo_id, ref["path"]))
            # Pinned to the hub's commit; sha256 of the real files cannot match the stand-ins.
            pinned = f"hf://{repo_id}@{commit}"
            if "source" in ref:
                files[role] = {"source": pinned, "path": ref["path"]}
            else:
                entry["source"] = pinned
                files[role] = ref["path"]
        entry["files"] = files
        registry = write_registry(tmp_path / "registry.yaml", {"splade-pp-en": entry})
        env = {
            "HF_ENDPOINT": hub.endpoint,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        texts = [TEXTS[0], TEXTS[1]]
        with (
            GatewayServer(registry=registry, models_dir=tmp_path / "models", env=env) as server,
            server.client() as client,
        ):
            missing = client.post("/embed_sparse", json={"inputs": texts})
            assert_tei_error(missing, 404, "Validation", "splade-pp-en", "pull")
            pulled = client.post("/api/pull", json={"model": "splade-pp-en", "stream": False})
            assert pulled.status_code == 200, pulled.text
            ours = dense(sparse(client, {"inputs": texts}))  # no model: the sparse one
        downloads = {(r.repo_id, r.filename) for r in hub.requests if "/resolve/" in r.path}
    assert (
        downloads
        == asked
        == {
            ("Qdrant/Splade_PP_en_v1", "model.onnx"),
            ("prithivida/Splade_PP_en_v1", "tokenizer.json"),
        }
    )
    reference = sentence_transformers_weights(model_dir, texts, shipped["max_tokens"])
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=ATOL)
