"""Token-id input on /v1/embeddings through the real server: LangChain's OpenAIEmbeddings with
its defaults (tiktoken ids, check_embedding_ctx_length=True) gives the vectors of the text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tiktoken
from langchain_openai import OpenAIEmbeddings

from tests.support.api import assert_openai_error, openai_embed
from tests.support.tiktoken_cache import seed_tiktoken_cache
from tools.gateway_server import GatewayServer
from tools.models import minilm_entry, write_registry

MODEL = "all-minilm"
O200K_ALIAS = "gpt-4o-minilm"  # a name tiktoken maps to o200k_base ("gpt-4o-" prefix)
TEXTS = [
    "a cat sits on the mat",
    "Zürich, crème brûlée, façade, naïve café",
    "emoji 🧪🚀 and a flag 🇨🇭 in a sentence",
    "中文句子，日本語の文、한국어 문장",  # noqa: RUF001 (CJK punctuation on purpose)
    "mixed: résumé 東京 🙂 done",
]
MIN_COSINE = 0.99999


@pytest.fixture(scope="module", autouse=True)
def tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LangChain's client side loads cl100k_base through tiktoken: seeded, never downloaded."""
    return seed_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))


@pytest.fixture(scope="module")
def aliased(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = write_registry(
        tmp_path_factory.mktemp("o200k") / "registry.yaml",
        {MODEL: minilm_entry(default_model_dir, aliases=[O200K_ALIAS])},
    )
    with GatewayServer(registry=registry) as running:
        yield running


def langchain(server: GatewayServer, model: str, recorded: list[dict], **options: object):
    def record(request: httpx.Request) -> None:
        recorded.append(json.loads(request.content))

    return OpenAIEmbeddings(
        model=model,
        base_url=server.url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        http_client=httpx.Client(event_hooks={"request": [record]}),
        **options,  # type: ignore[arg-type]
    )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("model", [MODEL, O200K_ALIAS])
def test_langchain_defaults_send_token_ids_and_get_the_text_vectors(
    server: GatewayServer, aliased: GatewayServer, model: str
) -> None:
    target = server if model == MODEL else aliased
    sent: list[dict] = []
    default = np.asarray(langchain(target, model, sent).embed_documents(TEXTS), np.float32)
    assert all(isinstance(row, list) and row for row in sent[0]["input"]), "token ids on the wire"
    encoding = tiktoken.encoding_for_model(model) if model != MODEL else None
    expected_ids = (encoding or tiktoken.get_encoding("cl100k_base")).encode_ordinary(TEXTS[3])
    assert sent[0]["input"][3] == expected_ids
    as_text = langchain(target, model, [], check_embedding_ctx_length=False)
    text = np.asarray(as_text.embed_documents(TEXTS), np.float32)
    sims = cosines(default, text)
    print(f"\n{model}: token ids vs text, min cosine {sims.min():.9f} over {len(TEXTS)} texts")
    assert sims.min() >= MIN_COSINE, sims
    query = np.asarray([langchain(target, model, []).embed_query(TEXTS[2])], np.float32)
    assert cosines(query, text[2:3]).min() >= MIN_COSINE


def test_token_ids_on_the_wire(server: GatewayServer) -> None:
    ids = [tiktoken.get_encoding("cl100k_base").encode_ordinary(text) for text in TEXTS]
    with server.client() as client:
        text = openai_embed(client, MODEL, TEXTS)
        from_ids = openai_embed(client, MODEL, ids)  # type: ignore[arg-type]
        np.testing.assert_allclose(from_ids, text, atol=1e-6)
        one = client.post("/v1/embeddings", json={"model": MODEL, "input": ids[1]})
        assert one.status_code == 200 and len(one.json()["data"]) == 1, one.text
        response = client.post("/v1/embeddings", json={"model": MODEL, "input": [ids[0], [1e9]]})
        assert_openai_error(response, 400, "input[1]", param="input")
        response = client.post(
            "/v1/embeddings", json={"model": MODEL, "input": [ids[0], [200_000]]}
        )
        assert_openai_error(response, 400, "input[1] has token id 200000", "cl100k_base")
