"""Every error about one item of a list names the item as the client's field calls it
(input[3], inputs[1], texts[1], documents[2]), on every route, through the real server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import assert_ollama_error, assert_openai_error, assert_tei_error
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
LONG = "word " * 600  # past all-minilm's 512 positions
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("/api/embed", {"model": MODEL, "input": ["ok", 5]}, "input[1]"),
    ("/api/embed", {"model": MODEL, "input": ["ok", LONG], "truncate": False}, "input[1] has"),
    ("/api/embed", {"model": MODEL, "input": LONG, "truncate": False}, "input has 602 tokens"),
    ("/v1/embeddings", {"model": MODEL, "input": ["ok", None]}, "input[1] must be"),
    (
        "/v1/embeddings",
        {"model": MODEL, "input": ["ok", {"image": "data:image/png;base64,AAAA"}]},
        "input[1] is an image",
    ),
    ("/txt/batch", {"inputs": ["ok", 3]}, "inputs[1]"),
    ("/v1/rerank", {"model": MODEL, "query": "q", "documents": ["a", 5]}, "documents[1]"),
    (
        "/v1/rerank",
        {"model": MODEL, "query": "q", "documents": ["a", {"title": "x"}]},
        "documents[1] has no string field 'text'",
    ),
    ("/v2/rerank", {"model": MODEL, "query": "q", "documents": ["a", None]}, "documents[1]"),
    (
        "/v2/rerank",
        # One chunk: the model's length (the default reads a long document in chunks).
        {
            "model": MODEL,
            "query": "q",
            "documents": ["a", LONG],
            "truncate": False,
            "max_chunks_per_doc": 1,
        },
        "documents[1] is longer",
    ),
    ("/embed", {"inputs": ["ok", "fine", ""]}, "inputs[2] is empty"),
    ("/api/rerank", {"model": MODEL, "query": "q", "documents": ["a", 7]}, "documents[1]"),
    ("/api/rerank", {"model": MODEL, "query": " ", "documents": ["a"]}, "query"),
]


@pytest.mark.parametrize(("path", "body", "fragment"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_errors_name_the_item(
    server: GatewayServer, path: str, body: dict[str, Any], fragment: str
) -> None:
    with server.client() as client:
        response = client.post(path, json=body)
        if path.startswith(("/v1/", "/v2/")):
            assert_openai_error(response, 400, fragment)
        elif path == "/embed" and "inputs" in body:  # TEI's body: its shape, "Empty" is a 400
            assert_tei_error(response, 400, "Empty", fragment)
        else:
            assert_ollama_error(response, 400, fragment)
        assert client.get("/health").json()["status"] == "OK", "the server stays healthy"
