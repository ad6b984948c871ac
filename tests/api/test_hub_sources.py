"""Pulling model files from a Hugging Face-shaped hub, and a gateway serving what it pulled.

The hub is `tools.hf_server.LocalHub`, a real HTTP server that the real huggingface_hub
reaches through `HF_ENDPOINT`; pulls run as `gateway pull` subprocesses, as users run them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support.pull_workspace import Workspace, assert_failed, leftovers, sha256, tiny_entry
from tools.gateway_server import GatewayServer
from tools.hf_server import LocalHub
from tools.models import minilm_entry, write_registry
from tools.paths import REPO

TINY = "acme/tiny-embed"
PRIVATE = "acme/private-embed"
TOKEN = "hf_local_test_token"


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class TinyRepo:
    """acme/tiny-embed: a first commit (also tagged v1.0), then a second one on main."""

    v1: str
    v2: str
    files_v1: Mapping[str, bytes]
    files_v2: Mapping[str, bytes]


FILES_V1 = {"onnx/model.onnx": blob(1, 300_000), "tokenizer.json": b'{"version": "v1"}'}
FILES_V2 = {"onnx/model.onnx": blob(2, 200_000), "tokenizer.json": b'{"version": "v2"}'}


@pytest.fixture(scope="module")
def local_hub() -> Iterator[tuple[LocalHub, TinyRepo]]:
    with LocalHub() as hub:
        v1 = hub.commit(TINY, FILES_V1)
        hub.tag(TINY, "v1.0", v1)
        v2 = hub.commit(TINY, FILES_V2)
        hub.create_repo(PRIVATE, token=TOKEN)
        hub.commit(PRIVATE, FILES_V1)
        yield hub, TinyRepo(v1, v2, FILES_V1, FILES_V2)


@pytest.fixture
def hub(local_hub: tuple[LocalHub, TinyRepo]) -> LocalHub:
    local_hub[0].clear_requests()
    return local_hub[0]


@pytest.fixture
def tiny(local_hub: tuple[LocalHub, TinyRepo]) -> TinyRepo:
    return local_hub[1]


@pytest.fixture
def ws(tmp_path: Path, hub: LocalHub) -> Workspace:
    return Workspace(tmp_path, hub)


# -- Hugging Face -------------------------------------------------------------------------------


def test_hf_pull_lands_files_and_manifest(ws: Workspace, hub: LocalHub, tiny: TinyRepo) -> None:
    source = f"hf://{TINY}@{tiny.v1}"
    model_bytes, tokenizer_bytes = tiny.files_v1["onnx/model.onnx"], tiny.files_v1["tokenizer.json"]
    ws.write({"tiny": tiny_entry(source, model_sha256=sha256(model_bytes))})

    listed = ws.gateway("list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["tiny", "text", "not", "pulled", "(default)"]

    result = ws.gateway("pull", "tiny")
    assert result.returncode == 0, result.stderr
    assert "tiny: success" in result.stdout

    folder = ws.models / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert (folder / "model.onnx").read_bytes() == model_bytes
    assert (folder / "tokenizer.json").read_bytes() == tokenizer_bytes
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert manifest["model"] == {
        "path": str(folder / "model.onnx"),
        "size": len(model_bytes),
        "sha256": sha256(model_bytes),
        "source": source,
    }
    # No digest in the registry for the tokenizer: the manifest records the one computed.
    assert manifest["tokenizer"]["sha256"] == sha256(tokenizer_bytes)
    assert manifest["tokenizer"]["size"] == len(tokenizer_bytes)

    # The ONNX file came from the CDN after a redirect, the tokenizer from the hub itself.
    assert [r.origin for r in hub.downloads("model.onnx")] == ["cdn"]
    assert [(r.origin, r.revision) for r in hub.downloads("tokenizer.json")] == [("hub", tiny.v1)]

    listed = ws.gateway("list")
    assert listed.stdout.split() == ["tiny", "text", "pulled", "(default)"]


@pytest.mark.parametrize("pin", ["commit", "tag", "branch", "none"])
def test_hf_pull_uses_the_pinned_revision(
    ws: Workspace, hub: LocalHub, tiny: TinyRepo, pin: str
) -> None:
    revision, expected, files = {
        "commit": (tiny.v1, tiny.v1, tiny.files_v1),
        "tag": ("v1.0", tiny.v1, tiny.files_v1),
        "branch": ("main", tiny.v2, tiny.files_v2),
        "none": (None, tiny.v2, tiny.files_v2),
    }[pin]
    source = f"hf://{TINY}" + (f"@{revision}" if revision else "")
    ws.write({"tiny": tiny_entry(source)})

    result = ws.gateway("pull", "tiny")

    assert result.returncode == 0, result.stderr
    assert (ws.models / "tiny" / "model.onnx").read_bytes() == files["onnx/model.onnx"]
    assert (ws.models / "tiny" / "tokenizer.json").read_bytes() == files["tokenizer.json"]
    resolves = [r for r in hub.requests if "/resolve/" in r.path and r.repo_id == TINY]
    assert {r.filename for r in resolves} == {"onnx/model.onnx", "tokenizer.json"}
    assert {r.revision for r in resolves} == {revision or "main"}
    # Once resolved, the file is fetched at the commit, not at a branch that may move.
    assert {r.revision for r in hub.downloads("tokenizer.json")} == {expected}
    unexpected = [
        r.path
        for r in hub.requests
        if not (r.origin == "cdn" or "/resolve" in r.path or r.path == "/api/agent-harnesses")
    ]
    assert unexpected == []


def test_second_pull_downloads_nothing(ws: Workspace, hub: LocalHub, tiny: TinyRepo) -> None:
    model_bytes = tiny.files_v1["onnx/model.onnx"]
    ws.write({"tiny": tiny_entry(f"hf://{TINY}@{tiny.v1}", model_sha256=sha256(model_bytes))})
    assert ws.gateway("pull", "tiny").returncode == 0
    model = ws.models / "tiny" / "model.onnx"
    before = model.stat()
    hub.clear_requests()

    again = ws.gateway("pull", "tiny")

    assert again.returncode == 0, again.stderr
    assert hub.requests == []
    assert (model.stat().st_ino, model.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # A present file that fails its registry digest is fetched again; the tokenizer (no digest
    # in the registry, present) is left alone.
    model.write_bytes(b"corrupted")
    repaired = ws.gateway("pull", "tiny")
    assert repaired.returncode == 0, repaired.stderr
    assert model.read_bytes() == model_bytes
    assert [r.filename for r in hub.downloads()] == ["model.onnx"]


def test_interrupted_download_resumes_with_a_range_request(ws: Workspace, hub: LocalHub) -> None:
    # huggingface_hub writes in 10 MiB chunks and resumes from the last whole one, so the file
    # must be larger than that for a resume to start past zero.
    model_bytes = blob(3, 12 * 1024 * 1024)
    commit = hub.commit("acme/big-embed", {"onnx/model.onnx": model_bytes, "tokenizer.json": b"{}"})
    ws.write({"big": tiny_entry(f"hf://acme/big-embed@{commit}", model_sha256=sha256(model_bytes))})
    cut = 11 * 1024 * 1024
    hub.interrupt_next_download("model.onnx", after_bytes=cut)

    result = ws.gateway("pull", "big")

    assert result.returncode == 0, result.stderr
    assert (ws.models / "big" / "model.onnx").read_bytes() == model_bytes
    first, resumed = hub.downloads("model.onnx")
    assert (first.status, first.sent_bytes, first.headers.get("range")) == (200, cut, None)
    unit, _, offset = (resumed.headers.get("range") or "").partition("=")
    assert unit == "bytes" and offset.endswith("-") and 0 < int(offset[:-1]) <= cut
    assert resumed.status == 206
    assert resumed.sent_bytes == len(model_bytes) - int(offset[:-1])


def test_wrong_sha256_fails_and_leaves_no_file(ws: Workspace, tiny: TinyRepo) -> None:
    actual = sha256(tiny.files_v1["onnx/model.onnx"])
    expected = sha256(b"some other model")
    ws.write({"tiny": tiny_entry(f"hf://{TINY}@{tiny.v1}", model_sha256=expected)})

    result = ws.gateway("pull", "tiny")

    assert_failed(result, "onnx/model.onnx", actual, expected)
    folder = ws.models / "tiny"
    assert not (folder / "model.onnx").exists()
    assert not (folder / "manifest.json").exists()
    assert leftovers(ws.models) == []


@pytest.mark.parametrize(
    ("repo", "revision", "path", "error"),
    [
        (TINY, "v1.0", "onnx/missing.onnx", "Entry Not Found"),
        (TINY, "0" * 40, "onnx/model.onnx", "Revision Not Found"),
        ("acme/no-such-repo", "main", "onnx/model.onnx", "Repository Not Found"),
    ],
    ids=["file", "revision", "repo"],
)
def test_hf_pull_of_missing_things_fails_clearly(
    ws: Workspace, hub: LocalHub, repo: str, revision: str, path: str, error: str
) -> None:
    entry = tiny_entry(f"hf://{repo}@{revision}")
    entry["files"]["model"]["path"] = path
    ws.write({"tiny": entry})

    result = ws.gateway("pull", "tiny")

    assert_failed(result, f"hf://{repo}@{revision}: cannot download {path}", error)
    assert not (ws.models / "tiny" / "model.onnx").exists()
    assert leftovers(ws.models) == []
    failures = [r for r in hub.requests if r.status in (401, 404)]
    assert [(r.repo_id, r.revision, r.filename) for r in failures] == [(repo, revision, path)]


def test_hf_token_goes_to_the_hub_and_not_to_the_cdn(ws: Workspace, hub: LocalHub) -> None:
    ws.write({"private": tiny_entry(f"hf://{PRIVATE}@main")})

    anonymous = ws.gateway("pull", "private")
    assert_failed(anonymous, "Repository Not Found")

    hub.clear_requests()
    result = ws.gateway("pull", "private", env={"HF_TOKEN": TOKEN})

    assert result.returncode == 0, result.stderr
    assert (ws.models / "private" / "model.onnx").read_bytes() == FILES_V1["onnx/model.onnx"]
    on_hub = [r for r in hub.requests if r.repo_id == PRIVATE]
    on_cdn = [r for r in hub.requests if r.origin == "cdn"]
    assert on_hub and on_cdn
    assert {r.headers.get("authorization") for r in on_hub} == {f"Bearer {TOKEN}"}
    assert [r.headers.get("authorization") for r in on_cdn] == [None]


def test_pull_of_an_unknown_name_fails_before_downloading(
    ws: Workspace, hub: LocalHub, tiny: TinyRepo
) -> None:
    ws.write({"tiny": tiny_entry(f"hf://{TINY}@{tiny.v1}")})

    result = ws.gateway("pull", "tiny", "no-such-model")

    assert_failed(result, "model 'no-such-model' not found")
    assert hub.requests == []
    assert not (ws.models / "tiny").exists()


# -- end to end ---------------------------------------------------------------------------------


def test_gateway_serves_a_model_pulled_from_the_hub(
    tmp_path: Path, hub: LocalHub, default_model_dir: Path
) -> None:
    """all-minilm's real files, published on the local hub, auto-pulled by a running gateway,
    give the same vectors as the bundled copy."""
    shipped = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]["all-minilm"]
    commit = hub.commit(
        "acme/all-minilm-onnx",
        {
            "onnx/model.onnx": default_model_dir / "model.onnx",
            "tokenizer.json": default_model_dir / "tokenizer.json",
        },
    )
    hub_entry = minilm_entry(
        default_model_dir,
        source=f"hf://acme/all-minilm-onnx@{commit}",
        files={
            "model": {"path": "onnx/model.onnx", "sha256": shipped["files"]["model"]["sha256"]},
            "tokenizer": {
                "path": "tokenizer.json",
                "sha256": shipped["files"]["tokenizer"]["sha256"],
            },
        },
    )
    registry = write_registry(
        tmp_path / "registry.yaml",
        {"all-minilm": minilm_entry(default_model_dir), "hub-minilm": hub_entry},
    )
    models = tmp_path / "models"
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GATEWAY_AUTO_PULL": "1",
    }
    texts = ["The cat sits on the mat.", "Embeddings map text to vectors.", "ok"]

    with (
        GatewayServer(registry=registry, models_dir=models, env=env) as server,
        server.client() as client,
    ):
        pulled = client.post("/api/embed", json={"model": "hub-minilm", "input": texts})
        bundled = client.post("/api/embed", json={"model": "all-minilm", "input": texts})

    assert pulled.status_code == 200, pulled.text
    assert bundled.status_code == 200, bundled.text
    ours, reference = np.array(pulled.json()["embeddings"]), np.array(bundled.json()["embeddings"])
    assert ours.shape == (3, 384)
    assert np.abs(ours - reference).max() <= 1e-6
    assert (
        sha256((models / "hub-minilm" / "model.onnx").read_bytes())
        == (shipped["files"]["model"]["sha256"])
    )
    assert {r.revision for r in hub.requests if "/resolve/" in r.path} == {commit}
    assert [r.origin for r in hub.downloads("model.onnx")] == ["cdn"]
