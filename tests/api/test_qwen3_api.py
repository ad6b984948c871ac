"""registry.yaml's qwen3-embedding as it ships: pulled from a local Hugging Face stand-in
(HF_ENDPOINT) at the paths the entry names (the graph in onnx/, its weights in
onnx/model.onnx_data beside it, tokenizer.json at the root), the tiny Qwen3 standing in for the
real weights, then served to the ollama and openai clients."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import ollama
import openai

from tests.support.api import assert_ollama_error
from tests.support.reference import cosines
from tools.corpus import SENTENCES
from tools.gateway_server import GatewayServer
from tools.hf_server import LocalHub
from tools.models import write_registry
from tools.qwen3 import ENTRY, qwen3_entry, sentence_transformer, shipped_entry, st_embed

MIN_COSINE = 0.99999
QUERIES = ["what do cats sit on?", "when did the market crash?"]
DOCUMENTS = SENTENCES[:3]


def pinned_entry(hub: LocalHub, folder: Path) -> tuple[dict[str, Any], set[str]]:
    """The tiny model's files committed to the shipped repository on `hub`, and the shipped
    entry pinned to that commit with their sha256 (the real files' cannot match)."""
    shipped = shipped_entry()
    match = re.fullmatch(r"hf://([^@]+)@[0-9a-f]{40}", shipped["source"])
    assert match, shipped["source"]
    paths = {
        role: ref if isinstance(ref, str) else ref["path"] for role, ref in shipped["files"].items()
    }
    commit = hub.commit(match[1], {path: folder / path for path in paths.values()})
    files = {
        role: {"path": path, "sha256": hashlib.sha256((folder / path).read_bytes()).hexdigest()}
        for role, path in paths.items()
    }
    entry = {**qwen3_entry(folder), "source": f"hf://{match[1]}@{commit}", "files": files}
    return entry, set(paths.values())


def test_the_shipped_entry_pulls_from_the_hub_and_serves(
    qwen3_folder: Path, tmp_path: Path
) -> None:
    expected_query = st_embed(sentence_transformer(qwen3_folder), QUERIES, "query", [64, 32])
    expected_docs = st_embed(sentence_transformer(qwen3_folder), DOCUMENTS, "document", [64])
    models_dir = tmp_path / "models"
    with LocalHub() as hub:
        entry, paths = pinned_entry(hub, qwen3_folder)
        registry = write_registry(tmp_path / "registry.yaml", {ENTRY: entry})
        env = {
            "HF_ENDPOINT": hub.endpoint,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        with GatewayServer(registry=registry, models_dir=models_dir, env=env) as server:
            with server.client() as client:
                missing = client.post("/api/embed", json={"model": ENTRY, "input": "hi"})
                assert_ollama_error(missing, 404, ENTRY, "pull")
                pulled = client.post("/api/pull", json={"model": ENTRY, "stream": False})
                assert pulled.status_code == 200, pulled.text
                shown = client.post("/api/show", json={"model": ENTRY})
            assert shown.status_code == 200, shown.text
            info = shown.json()["model_info"]
            assert info["gateway.pooling"] == "last"
            assert info["gateway.default_task"] == "document"

            docs = ollama.Client(host=server.url).embed(model=ENTRY, input=DOCUMENTS)
            sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            queries = sdk.embeddings.create(
                model=ENTRY, input=QUERIES, dimensions=32, extra_body={"input_type": "query"}
            )
        downloads = {r.filename for r in hub.requests if r.is_download}
    assert downloads == {Path(p).name for p in paths}
    # Pulled flat into the model's folder: the weights sit beside the graph that names them.
    landed = {p.name for p in (models_dir / ENTRY).iterdir()}
    assert {"model.onnx", "model.onnx_data", "tokenizer.json"} <= landed
    served_docs = np.asarray(docs.embeddings, dtype=np.float32)
    assert cosines(served_docs, expected_docs[64]).min() >= MIN_COSINE
    served_queries = np.array([item.embedding for item in queries.data], dtype=np.float32)
    assert served_queries.shape == (2, 32)
    assert cosines(served_queries, expected_query[32]).min() >= MIN_COSINE
    assert queries.usage.prompt_tokens > sum(len(q.split()) for q in QUERIES) + 20  # instruction
