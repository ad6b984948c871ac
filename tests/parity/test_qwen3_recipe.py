"""Qwen3-Embedding's recipe through the real server, against sentence-transformers on the same
weights.

The model is a tiny random Qwen3 (tools/qwen3.py) exported as onnx-community's repository is laid
out (onnx/model.onnx + onnx/model.onnx_data, position_ids and an empty KV cache as inputs) and
served with registry.yaml's `qwen3-embedding` entry. The reference is sentence-transformers:
Transformer (left-padded, as Qwen's tokenizer_config asks) -> lasttoken Pooling -> Normalize,
queries with the entry's instruction as its `query` prompt; Matryoshka widths are its full
vectors sliced and normalized again. Queries and documents, every width, must match at
>= 0.99999; a text alone and inside a mixed-length batch agree to 1e-5; the graph runs on
ONNX Runtime and on OpenVINO (the CPU fast path).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.runtime import Runtime
from tests.support.api import ollama_embed, openai_embed
from tests.support.reference import cosines
from tools.corpus import SENTENCES, UNICODE
from tools.fast_path import measure, text_case
from tools.gateway_server import GatewayServer
from tools.qwen3 import (
    END,
    ENTRY,
    card_recipe,
    query_prompt,
    qwen3_entry,
    sentence_transformer,
    st_embed,
)

MIN_COSINE = 0.99999
MAX_DIFF = 1e-5
WIDTHS = [64, 32, 16, 7]  # native, advertised, and one that is not
TASKS = ("query", "document")
MEASURED: dict[tuple[str, int], float] = {}


@pytest.fixture(scope="module")
def folder(qwen3_folder: Path) -> Path:
    return qwen3_folder


@pytest.fixture(scope="module")
def texts() -> list[str]:
    # Mixed lengths in one request: the server pads them into one batch on the right, the
    # reference pads on the left.
    return ["hello", *SENTENCES[:6], *UNICODE[:2], " ".join(SENTENCES[6:14])]


@pytest.fixture(scope="module")
def reference(folder: Path) -> Any:
    return sentence_transformer(folder)


@pytest.fixture(scope="module")
def expected(reference: Any, texts: list[str]) -> dict[str, dict[int, np.ndarray]]:
    return {task: st_embed(reference, texts, task, WIDTHS) for task in TASKS}


@pytest.fixture(scope="module")
def server(qwen3_server: GatewayServer) -> GatewayServer:
    return qwen3_server


@pytest.fixture(scope="module", autouse=True)
def print_measured() -> Iterator[None]:
    yield
    if MEASURED:
        print("\nqwen3 recipe, min cosine vs sentence-transformers (task, dim):")
        for (task, dim), value in sorted(MEASURED.items()):
            print(f"  {task:9} {dim:3d}  {value:.9f}  (1 - cos = {1 - value:.1e})")


def check(served: np.ndarray, want: np.ndarray, task: str, dim: int, how: str) -> None:
    assert served.shape == want.shape, (how, served.shape, want.shape)
    sims = cosines(served, want)
    MEASURED[task, dim] = min(MEASURED.get((task, dim), 1.0), float(sims.min()))
    assert sims.min() >= MIN_COSINE, f"{how}: {task} dim {dim}: min cosine {sims.min():.9f}"
    assert np.abs(np.linalg.norm(served, axis=1) - 1).max() < 1e-5, f"{how}: not unit length"


def test_the_reference_follows_the_model_card(
    reference: Any, folder: Path, texts: list[str], expected: dict[str, dict[int, np.ndarray]]
) -> None:
    """It pads on the left and ends every text with <|endoftext|>, as Qwen's tokenizer does;
    the model card's transformers code (right padding) gives the same vectors; and the
    instruction changes them far beyond the tolerance, so a missing prefix would fail."""
    tokenizer = reference.tokenizer
    assert tokenizer.padding_side == "left"
    batch = tokenizer(["hi", "a longer text here"], padding=True)
    end = tokenizer.convert_tokens_to_ids(END)
    assert [row[-1] for row in batch["input_ids"]] == [end, end]
    assert batch["attention_mask"][0][0] == 0, "the short row is padded on the left"
    card = cosines(card_recipe(folder, [query_prompt() + t for t in texts]), expected["query"][64])
    print(f"\nmodel card recipe vs sentence-transformers: min cosine {card.min():.9f}")
    assert card.min() >= MIN_COSINE
    sims = cosines(expected["query"][64], expected["document"][64])
    print(f"query vs document vectors: max cosine {sims.max():.6f}")
    assert sims.max() < 0.999
    assert cosines(expected["document"][64][:-1], expected["document"][64][1:]).max() < 0.99


def test_documents_by_default_every_width(
    server: GatewayServer, expected: dict[str, dict[int, np.ndarray]], texts: list[str]
) -> None:
    with server.client() as client:
        check(
            ollama_embed(client, ENTRY, texts), expected["document"][64], "document", 64, "ollama"
        )
        for dim in WIDTHS:
            served = ollama_embed(client, ENTRY, texts, dimensions=dim)
            check(served, expected["document"][dim], "document", dim, "/api/embed")


def test_queries_every_width(
    server: GatewayServer, expected: dict[str, dict[int, np.ndarray]], texts: list[str]
) -> None:
    with server.client() as client:
        for dim in WIDTHS:
            served = openai_embed(client, ENTRY, texts, dimensions=dim, input_type="query")
            check(served, expected["query"][dim], "query", dim, "/v1/embeddings input_type")
        served = ollama_embed(client, f"{ENTRY}:query", texts, dimensions=32)
        check(served, expected["query"][32], "query", 32, f"/api/embed {ENTRY}:query")
        # Written by the client, as Ollama's users do: the instruction is not added twice.
        written = [query_prompt() + text for text in texts]
        served = openai_embed(client, ENTRY, written, input_type="query")
        check(served, expected["query"][64], "query", 64, "instruction written by the client")


@pytest.mark.parametrize("task", TASKS)
def test_alone_equals_batched(server: GatewayServer, texts: list[str], task: str) -> None:
    """Right padding under causal attention: no real token sees the padding."""
    with server.client() as client:
        alone = np.stack([openai_embed(client, ENTRY, [t], input_type=task)[0] for t in texts])
        runs_before = runs(client)
        together = openai_embed(client, ENTRY, texts, input_type=task)
        shared = runs(client) - runs_before
        reordered = openai_embed(client, ENTRY, texts[::-1], input_type=task)[::-1]
    worst = max(np.abs(together - alone).max(), np.abs(reordered - alone).max())
    print(f"\n{task}: {len(texts)} texts in {shared} runs: max |alone - batched| {worst:.2e}")
    assert shared < len(texts) // 2, "the texts must share runs for this to mean something"
    assert worst <= MAX_DIFF


def runs(client: httpx.Client) -> int:
    """Inference runs of the model so far (/admin/models)."""
    (row,) = [m for m in client.get("/admin/models").json()["models"] if m["name"] == ENTRY]
    count: int = row["batches"]
    return count


@pytest.mark.parametrize(
    ("backend", "precision"), [("openvino", "fp32"), ("auto", "auto")], ids=["openvino", "auto"]
)
def test_runs_on_each_cpu_backend(
    folder: Path, texts: list[str], backend: str, precision: str
) -> None:
    """OpenVINO (what `auto` picks on a CPU) against ONNX Runtime fp32: parity at every
    advertised width, and each text alone vs in bucket batches."""
    case = text_case(ENTRY, qwen3_entry(folder), folder, texts)
    fast = Runtime(device="cpu", threads=2, backend=backend, precision=precision)
    figures = measure(case, fast, Runtime(device="cpu", threads=2))
    print(f"\n{figures.placement}: " + " | ".join(figures.row()[2:]))
    assert figures.non_finite == 0
    assert figures.max_abs_served <= MAX_DIFF
    bound = MIN_COSINE if figures.placement.endswith("fp32 on cpu") else 0.999
    assert figures.min_cos_to_fp32 >= bound
    assert set(figures.per_width) == {64, 32, 16}
    assert min(figures.per_width.values()) >= bound
