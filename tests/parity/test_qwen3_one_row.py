"""A Qwen3 export whose KV-cache inputs fix their batch axis to 1, as some exports declare it
(tools/qwen3.py's one-row variant: the tiny export with that one change to its inputs).

Fed more than one row such a graph fails every run. Loaded, it is found and run a row at a time:
a mixed-length batch must give each text the vector it gets alone, and the vector the
dynamic-batch export gives it, on ONNX Runtime and on OpenVINO fp32; the server loads it, serves
it and says why in `compute`. A cache whose head sizes are open is refused by both backends'
loads in the same words.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from gateway.backends import session_placement
from gateway.encoders import TextEncoder, build_encoder
from gateway.encoders.base import EncodeOptions
from gateway.errors import ModelLoadError
from gateway.load_errors import load_error
from gateway.registry import parse_entry
from gateway.runtime import Runtime
from tests.support.api import openai_embed
from tests.support.models import NO_CACHE, PINNED_BATCHING
from tools.corpus import SENTENCES, UNICODE
from tools.gateway_server import GatewayServer
from tools.models import write_registry
from tools.qwen3 import ENTRY, copy_export, declare_cache_axis, qwen3_entry, qwen3_one_row_dir

MAX_DIFF = 1e-5
BACKENDS = ("onnxruntime", "openvino")
CACHE = ("past_key_values.0.key", "past_key_values.0.value")
DYNAMIC = "qwen3-dynamic"


@pytest.fixture(scope="module")
def one_row_folder() -> Path:
    return qwen3_one_row_dir()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return ["hello", *SENTENCES[:6], *UNICODE[:2], " ".join(SENTENCES[6:14])]


def encoder_for(folder: Path, backend: str) -> TextEncoder:
    spec = parse_entry(ENTRY, qwen3_entry(folder))
    paths = {role: folder / ref.path for role, ref in spec.files.items()}
    runtime = Runtime(device="cpu", threads=2, backend=backend, precision="fp32")
    encoder = build_encoder(spec, paths, runtime)
    assert isinstance(encoder, TextEncoder)
    placement = session_placement(encoder)
    assert placement is not None and (placement.backend, placement.precision) == (backend, "fp32")
    return encoder


def vectors(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    vectors: np.ndarray = encoder.finish(
        encoder.run(encoder.prepare(texts, EncodeOptions())), EncodeOptions()
    )
    return vectors


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mixed_batch_gives_each_text_its_vector_alone_and_the_dynamic_exports(
    qwen3_folder: Path, one_row_folder: Path, texts: list[str], backend: str
) -> None:
    one_row, dynamic = encoder_for(one_row_folder, backend), encoder_for(qwen3_folder, backend)
    batched = vectors(one_row, texts)
    alone = np.concatenate([vectors(one_row, [text]) for text in texts])
    reordered = vectors(one_row, texts[::-1])[::-1]
    reference = vectors(dynamic, texts)
    items = one_row.prepare(texts, EncodeOptions())
    states = zip(one_row.token_states(items), dynamic.token_states(items), strict=True)
    worst = {
        "alone vs batch": float(
            max(np.abs(batched - alone).max(), np.abs(reordered - alone).max())
        ),
        "vs dynamic export": float(np.abs(batched - reference).max()),
        "token states vs dynamic": max(float(np.abs(a - b).max()) for a, b in states),
    }
    print(f"\n{backend} fp32, one-row graph, max abs: {worst}")
    assert max(worst.values()) <= MAX_DIFF
    assert one_row.one_row_inputs[:2] == CACHE and len(one_row.one_row_inputs) == 4
    assert dynamic.one_row_inputs == ()


def test_the_server_serves_a_one_row_graph_and_says_why(
    qwen3_folder: Path, one_row_folder: Path, texts: list[str], tmp_path: Path
) -> None:
    """The load times batches of several rows (run overhead), so it failed before any request."""
    models = {ENTRY: qwen3_entry(one_row_folder), DYNAMIC: qwen3_entry(qwen3_folder, aliases=[])}
    registry = write_registry(tmp_path / "registry.yaml", models, default_model=ENTRY)
    with GatewayServer(registry=registry, env={**NO_CACHE, **PINNED_BATCHING}) as server:
        with server.client() as client:
            together = openai_embed(client, ENTRY, texts)
            alone = np.stack([openai_embed(client, ENTRY, [text])[0] for text in texts])
            dynamic = openai_embed(client, DYNAMIC, texts)
            states = [token_states(client, model, texts[:3]) for model in (ENTRY, DYNAMIC)]
            rows = client.get("/admin/models").json()["models"]
        log = server.log()
    compute = {row["name"]: row.get("compute", {}) for row in rows}
    worst = max(np.abs(together - alone).max(), np.abs(together - dynamic).max())
    worst_states = max(np.abs(a - b).max() for a, b in zip(*states, strict=True))
    print(
        f"\nserved one-row graph ({compute[ENTRY]['backend']} {compute[ENTRY]['precision']}): "
        f"max |batch - alone|, |batch - dynamic export| {worst:.2e}; "
        f"/embed_all vs dynamic {worst_states:.2e}"
    )
    assert worst <= MAX_DIFF and worst_states <= MAX_DIFF
    assert compute[ENTRY]["rows_per_run"] == 1
    assert ", ".join(CACHE) in compute[ENTRY]["rows_per_run_reason"]
    assert "rows_per_run" not in compute[DYNAMIC]
    (loaded,) = [line for line in log.splitlines() if f"loaded {ENTRY} " in line]
    assert "one input per run" in loaded


def token_states(client: httpx.Client, model: str, texts: list[str]) -> list[np.ndarray]:
    """/embed_all: each text's token vectors."""
    response = client.post("/embed_all", json={"model": model, "inputs": texts})
    assert response.status_code == 200, response.text
    return [np.asarray(states, dtype=np.float32) for states in response.json()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cache_of_open_head_sizes_is_refused_alike_by_each_backend(
    backend: str, tmp_path: Path
) -> None:
    declare_cache_axis(copy_export(tmp_path), 1, "kv_heads")
    with pytest.raises(ModelLoadError) as refused:
        encoder_for(tmp_path, backend)
    message = load_error(ENTRY, refused.value).message
    print(f"\n{backend}: {message}")
    assert f"KV-cache inputs {list(CACHE)} leave their heads or head width open" in message
    assert "export the graph without the cache (use_cache=False)" in message
