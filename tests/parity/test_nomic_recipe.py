"""nomic-embed-text's recipe through the real server, against an independent PyTorch reference.

The model is a tiny seeded NomicBert (rotary attention, SwiGLU, hidden 768) exported to ONNX and
served with the repository's `nomic-embed-text` registry entry. The reference runs the same
weights in PyTorch: prefix + text -> HF tokenizer -> forward -> mean pool -> F.layer_norm ->
slice -> F.normalize. Every task prefix and every Matryoshka width must match at >= 0.99999,
whichever way the task is named: default task, `name:task` alias, OpenAI `input_type`/`task`,
native `task`.
"""

from __future__ import annotations

import numpy as np
import ollama
import openai
import pytest
from langchain_ollama import OllamaEmbeddings

from tests.support.api import assert_ollama_error, assert_openai_error, ollama_embed, openai_embed
from tests.support.models import NOMIC
from tests.support.reference import (
    NOMIC_DIMENSIONS,
    NOMIC_PREFIXES,
    NomicReference,
    cosines,
    minilm_token_counter,
)
from tools.corpus import SENTENCES, UNICODE, text_of_tokens
from tools.gateway_server import GatewayServer

MIN_COSINE = 0.99999
MAX_TOKENS = 512  # the test entry's max_tokens (tools/models.py:nomic_entry)
# Widths outside the advertised list: served too, by the same layer_norm -> slice -> L2 recipe.
UNLISTED_DIMENSIONS = [300, 37, 1]
WIDTHS = [*NOMIC_DIMENSIONS, *UNLISTED_DIMENSIONS]
# (task, dimension) -> min cosine measured, printed at the end of the module.
MEASURED: dict[tuple[str, int], float] = {}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    count = minilm_token_counter()
    # Mixed lengths in one request: the server pads them into one batch, the reference doesn't.
    return [
        "hello",
        *SENTENCES[:5],
        *UNICODE[:3],
        "What is the capital of France?",
        text_of_tokens(120, count, seed=3),
        text_of_tokens(300, count, seed=4),
    ]


@pytest.fixture(scope="module")
def reference(nomic_dir) -> NomicReference:
    return NomicReference(nomic_dir / "torch", nomic_dir / "tokenizer.json", MAX_TOKENS)


@pytest.fixture(scope="module")
def expected(reference: NomicReference, texts: list[str]) -> dict[str, dict[int, np.ndarray]]:
    """task -> width -> reference vectors, for every task prefix of nomic-embed-text."""
    return {task: reference.embed(texts, prefix, WIDTHS) for task, prefix in NOMIC_PREFIXES.items()}


@pytest.fixture(scope="module", autouse=True)
def print_measured() -> object:
    yield
    if MEASURED:
        print("\nnomic recipe, min cosine vs PyTorch reference (task, dim):")
        for (task, dim), value in sorted(MEASURED.items()):
            print(f"  {task:15} {dim:4d}  {value:.9f}  (1 - cos = {1 - value:.1e})")


def check(served: np.ndarray, want: np.ndarray, task: str, dim: int, how: str) -> None:
    assert served.shape == want.shape, (how, served.shape, want.shape)
    sims = cosines(served, want)
    key = (task, dim)
    MEASURED[key] = min(MEASURED.get(key, 1.0), float(sims.min()))
    assert sims.min() >= MIN_COSINE, (
        f"{how}: task {task} dim {dim}: min cosine {sims.min():.9f} mean {sims.mean():.9f}"
    )
    assert np.abs(np.linalg.norm(served, axis=1) - 1).max() < 1e-5, f"{how}: not unit length"


def test_reference_tells_tasks_and_layer_norm_apart(
    reference: NomicReference, expected: dict[str, dict[int, np.ndarray]], texts: list[str]
) -> None:
    """The comparisons below can fail: a missing prefix or a skipped layer_norm changes vectors
    far more than the 1e-5 tolerance."""
    # A four-token prefix barely moves the mean of a 300-token text: judge on the short ones.
    short = slice(0, len(texts) - 2)
    for task in ("query", "clustering", "classification"):
        sims = cosines(expected[task][768], expected["document"][768])[short]
        print(f"\n{task} vs document prefix: max cosine {sims.max():.6f}")
        assert sims.max() < 0.9995, (task, sims.max())
    plain = reference.embed(texts, NOMIC_PREFIXES["document"], [64], layer_norm=False)[64]
    sims = cosines(plain, expected["document"][64])
    print(f"without layer_norm, dim 64: max cosine {sims.max():.6f} vs the recipe")
    assert sims.max() < 0.99
    different = cosines(expected["document"][768][:-1], expected["document"][768][1:])
    assert different.max() < 0.99, "distinct texts must give clearly distinct vectors"


def test_default_task_every_dimension_ollama(
    nomic_server: GatewayServer, expected: dict[str, dict[int, np.ndarray]], texts: list[str]
) -> None:
    with nomic_server.client() as client:
        full = ollama_embed(client, NOMIC, texts)
        check(full, expected["document"][768], "document", 768, "/api/embed, no dimensions")
        for dim in WIDTHS:
            served = ollama_embed(client, NOMIC, texts, dimensions=dim)
            check(served, expected["document"][dim], "document", dim, "/api/embed")


@pytest.mark.parametrize(
    ("field", "value", "task"),
    [
        ("input_type", "query", "query"),
        ("input_type", "search_document", "document"),
        ("task", "clustering", "clustering"),
        ("task", "classification", "classification"),
    ],
)
def test_openai_task_field_every_dimension(
    nomic_server: GatewayServer,
    expected: dict[str, dict[int, np.ndarray]],
    texts: list[str],
    field: str,
    value: str,
    task: str,
) -> None:
    with nomic_server.client() as client:
        for dim in WIDTHS:
            served = openai_embed(
                client, NOMIC, texts, dimensions=dim, encoding_format="base64", **{field: value}
            )
            check(served, expected[task][dim], task, dim, f"/v1/embeddings {field}={value}")


@pytest.mark.parametrize("task", ["query", "document", "clustering", "classification"])
def test_name_task_alias(
    nomic_server: GatewayServer,
    expected: dict[str, dict[int, np.ndarray]],
    texts: list[str],
    task: str,
) -> None:
    """`nomic-embed-text:query` picks the prefix: for clients that can only name a model."""
    with nomic_server.client() as client:
        served = ollama_embed(client, f"{NOMIC}:{task}", texts, dimensions=256)
        check(served, expected[task][256], task, 256, f"/api/embed model {NOMIC}:{task}")
        served = openai_embed(client, f"{NOMIC}:{task}", texts[:4])
        check(served, expected[task][768][:4], task, 768, f"/v1/embeddings model {NOMIC}:{task}")


def test_openai_sdk_with_dimensions(
    nomic_server: GatewayServer, expected: dict[str, dict[int, np.ndarray]], texts: list[str]
) -> None:
    client = openai.OpenAI(base_url=nomic_server.url + "/v1", api_key="unused", max_retries=0)
    for dim in (512, 64):
        # The SDK asks for base64 and decodes it; input_type travels as an extra field.
        response = client.embeddings.create(
            model=NOMIC, input=texts, dimensions=dim, extra_body={"input_type": "query"}
        )
        served = np.array([item.embedding for item in response.data], dtype=np.float32)
        check(served, expected["query"][dim], "query", dim, "openai SDK")
        assert response.model == NOMIC
        assert response.usage.prompt_tokens > len(texts)


def test_ollama_clients_with_dimensions(
    nomic_server: GatewayServer, expected: dict[str, dict[int, np.ndarray]], texts: list[str]
) -> None:
    """ollama-python and LangChain's OllamaEmbeddings, naming the task through the model."""
    response = ollama.Client(host=nomic_server.url).embed(
        model=f"{NOMIC}:query", input=texts[:4], dimensions=128
    )
    served = np.asarray(response.embeddings, dtype=np.float32)
    check(served, expected["query"][128][:4], "query", 128, "ollama client")
    langchain = OllamaEmbeddings(model=f"{NOMIC}:query", base_url=nomic_server.url, dimensions=64)
    served = np.asarray([langchain.embed_query(texts[2])], dtype=np.float32)
    check(served, expected["query"][64][2:3], "query", 64, "LangChain OllamaEmbeddings")


def test_native_routes_with_dim_and_task(
    nomic_server: GatewayServer, expected: dict[str, dict[int, np.ndarray]], texts: list[str]
) -> None:
    """The native routes serve the registry's default model: here nomic-embed-text."""
    with nomic_server.client() as client:
        one = client.post("/embed", json={"input": texts[1], "dim": 128, "task": "query"})
        assert one.status_code == 200, one.text
        served = np.array([one.json()["embedding"]], dtype=np.float32)
        check(served, expected["query"][128][1:2], "query", 128, "/embed")
        batch = client.post("/txt/batch", json={"inputs": texts, "dim": 64})
        assert batch.status_code == 200, batch.text
        served = np.array(batch.json()["embeddings"], dtype=np.float32)
        check(served, expected["document"][64], "document", 64, "/txt/batch (default task)")


def test_widths_outside_1_to_native_are_refused_or_ignored(nomic_server: GatewayServer) -> None:
    with nomic_server.client() as client:
        for dim in (769, 0, -3, 12.5):
            response = client.post(
                "/api/embed", json={"model": NOMIC, "input": "hi", "dimensions": dim}
            )
            if isinstance(dim, int):  # Ollama's rule there: ignored, the full width
                assert len(response.json()["embeddings"][0]) == 768, response.text
            else:
                assert_ollama_error(response, 400, "dimensions", "from 1 to 768")
            response = client.post(
                "/v1/embeddings", json={"model": NOMIC, "input": "hi", "dimensions": dim}
            )
            assert_openai_error(response, 400, "from 1 to 768", param="dimensions")
        response = client.post("/embed", json={"input": "hi", "dim": 1000})
        assert_ollama_error(response, 400, "dim must be", "from 1 to 768")
        response = client.post(
            "/v1/embeddings", json={"model": NOMIC, "input": "hi", "input_type": "poem"}
        )
        assert_openai_error(response, 400, "input_type", param="input_type")
