"""A text that already carries one of the model's task prefixes is embedded as sent.

Ollama adds no prefix, so its nomic-embed-text users write "search_query: ..." into the text;
the gateway adds the registry's default ("search_document: ") unless the text already starts
with a registered prefix, and that prefix wins over a task the request names. Served by the
tiny NomicBert with the shipped nomic-embed-text entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.api import ollama_embed, openai_embed
from tests.support.models import NOMIC
from tools.gateway_server import GatewayServer
from tools.models import nomic_entry, write_registry

QUESTION = "what is rust?"
ASKED = "search_query: " + QUESTION  # as Ollama's nomic users send a query


@pytest.fixture(scope="module")
def client(nomic_server: GatewayServer) -> Iterator[httpx.Client]:
    with nomic_server.client() as http:
        yield http


def query_vector(client: httpx.Client) -> np.ndarray:
    return openai_embed(client, NOMIC, [QUESTION], input_type="query")[0]


def test_a_prefixed_text_gets_no_second_prefix(client: httpx.Client) -> None:
    ollama = ollama_embed(client, NOMIC, [ASKED])[0]
    assert np.abs(ollama - query_vector(client)).max() == 0.0
    # Without its own prefix the text still gets the default task's.
    document = ollama_embed(client, NOMIC, [QUESTION])[0]
    assert np.array_equal(
        document, openai_embed(client, NOMIC, [QUESTION], input_type="document")[0]
    )
    assert np.abs(document - ollama).max() > 1e-3


def test_the_texts_own_prefix_wins_over_the_requested_task(client: httpx.Client) -> None:
    named = openai_embed(client, NOMIC, [ASKED], input_type="document")[0]
    assert np.abs(named - query_vector(client)).max() == 0.0
    tagged = ollama_embed(client, NOMIC + ":clustering", [ASKED])[0]
    assert np.abs(tagged - query_vector(client)).max() == 0.0


def test_tokenize_shows_one_prefix(client: httpx.Client) -> None:
    def tokens(body: dict[str, object]) -> list[str]:
        answer = client.post("/tokenize", json={"model": NOMIC, **body})
        assert answer.status_code == 200, answer.text
        return [token["text"] for token in answer.json()[0]]

    sent = tokens({"inputs": ASKED})
    assert sent.count("search") == 1 and "document" not in sent, sent
    assert sent == tokens({"inputs": QUESTION, "prompt_name": "query"})
    assert sent == tokens({"inputs": ASKED, "prompt_name": "document"})


def test_cached_vectors_follow_what_was_embedded(
    nomic_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With the embedding cache on, each (prefix added, text) is its own entry: whichever comes
    first, the prefixed text and the plain one under each task get their own vectors."""
    registry = write_registry(
        tmp_path_factory.mktemp("prefix-cache") / "registry.yaml",
        {NOMIC: nomic_entry(nomic_dir)},
        default_model=NOMIC,
    )
    with GatewayServer(registry=registry) as server, server.client() as http:
        first = ollama_embed(http, NOMIC, [ASKED])[0]
        document = ollama_embed(http, NOMIC, [QUESTION])[0]
        query = query_vector(http)
        again = ollama_embed(http, NOMIC, [ASKED, QUESTION])
        named = openai_embed(http, NOMIC, [ASKED], input_type="document")[0]
    assert np.array_equal(first, query) and np.array_equal(named, query)
    assert np.array_equal(again[0], query) and np.array_equal(again[1], document)
    assert not np.array_equal(document, query)
