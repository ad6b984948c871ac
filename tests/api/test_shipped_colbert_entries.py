"""registry.yaml's ColBERT entries, pulled from a local hub laid out as their Hugging Face
repositories, serve PyLate's vectors."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.support.multivector import matrices_of, post_embeddings, reference
from tools.colbert_models import DOCUMENTS, QUERIES, ColbertModel
from tools.gateway_server import GatewayServer
from tools.hf_server import LocalHub
from tools.late_api import assert_matches_pylate
from tools.models import write_registry
from tools.paths import REPO


def test_shipped_colbert_entries_pull_and_serve_pylate_vectors(
    colberts: dict[str, ColbertModel], tmp_path: Path
) -> None:
    """registry.yaml's answerai-colbert-small and gte-moderncolbert entries, verbatim, pulled with
    POST /api/pull from a local hub that lays out the tiny models as their Hugging Face repos do
    (next-plaid exports: model.onnx with projection and L2 inside, PyLate's tokenizer.json). Their
    settings (markers, lengths, expansion, skiplist) must reproduce PyLate on the same weights."""
    shipped = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]
    served = {"answerai-colbert-small": "bert", "gte-moderncolbert": "modernbert"}
    repos: list[str] = []
    with LocalHub() as hub:
        entries = {}
        for name, arch in served.items():
            entry = dict(shipped[name])
            match = re.fullmatch(r"hf://([^@]+)@(.+)", entry["source"])
            assert match, entry["source"]
            repo_id, revision = match.groups()
            repos.append(repo_id)
            model = colberts[arch]
            roles = {"model": model.folder / "graph" / "model.onnx", "tokenizer": model.tokenizer}
            files = {
                (ref if isinstance(ref, str) else ref["path"]): roles[role]
                for role, ref in entry["files"].items()
            }
            commit = hub.commit(repo_id, files, branch=revision)
            if re.fullmatch(r"[0-9a-f]{40}", revision):  # a pinned entry: pin to the hub's commit
                entry["source"] = f"hf://{repo_id}@{commit}"
            # sha256 of the real files cannot match the tiny stand-ins.
            entry["files"] = {
                role: ref if isinstance(ref, str) else ref["path"]
                for role, ref in entry["files"].items()
            }
            entries[name] = entry
        registry = write_registry(tmp_path / "registry.yaml", entries)
        env = {
            "HF_ENDPOINT": hub.endpoint,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        with (
            GatewayServer(registry=registry, models_dir=tmp_path / "models", env=env) as server,
            server.client() as client,
        ):
            for name, arch in served.items():
                response = client.post("/api/pull", json={"model": name, "stream": False})
                assert response.status_code == 200, response.text
                model = colberts[arch]
                for task, texts in (("query", QUERIES), ("document", DOCUMENTS)):
                    body = {"model": name, "input": texts, "input_type": task}
                    ours = matrices_of(
                        post_embeddings(client, {**body, "encoding_format": "float"})
                    )
                    assert_matches_pylate(ours, reference(model, task), f"shipped {name} {task}")
        asked = {(r.repo_id, r.filename) for r in hub.requests if "/resolve/" in r.path}
    assert repos == [
        "lightonai/answerai-colbert-small-v1-onnx",
        "lightonai/GTE-ModernColBERT-v1-onnx",
    ]
    assert asked == {(repo, path) for repo in repos for path in ("model.onnx", "tokenizer.json")}
