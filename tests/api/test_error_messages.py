"""Error messages say what was wrong with the request."""

from __future__ import annotations

import pytest

from tests.support.api import assert_ollama_error, assert_openai_error
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (b'{"model": "all-minilm", "input": "\\ud800"}', ["\\ud800", "unpaired", "surrogate"]),
        (b'{"model": "all-minilm", "input": "a\\udc00b"}', ["\\udc00", "unpaired"]),
        (b'{"model": "all-minilm", "input": ["ok", "\\uDBFF"]}', ["\\uDBFF", "byte"]),
        (b'{"model": "all-minilm", "input": "cut', ["ends before the JSON value is complete"]),
        (b'{"model": "all-minilm", "input": nope}', ["invalid JSON"]),
        # An escaped backslash and then "ud83d" is text, not an escape: the comma is at fault.
        (b'{"model": "all-minilm", "input": "\\\\ud83d",}', ["trailing comma"]),
    ],
    ids=["high-alone", "low-alone", "high-at-end", "truncated", "malformed", "escaped-backslash"],
)
def test_invalid_json_is_explained(server: GatewayServer, body: bytes, needles: list[str]) -> None:
    headers = {"Content-Type": "application/json"}
    with server.client() as client:
        message = assert_ollama_error(client.post("/api/embed", content=body, headers=headers), 400)
        error = assert_openai_error(
            client.post("/v1/embeddings", content=body, headers=headers), 400
        )
    for text in (message, error["message"]):
        assert "truncated" not in text.lower() or "cut" in body.decode()
        for needle in needles:
            assert needle in text, (needle, text)


def test_a_valid_surrogate_pair_is_accepted(server: GatewayServer) -> None:
    body = b'{"model": "all-minilm", "input": "emoji \\ud83d\\ude00"}'
    with server.client() as client:
        response = client.post(
            "/api/embed", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("blank", ["", "  ", "\t\n"])
def test_blank_list_items_are_embedded_alike(server: GatewayServer, blank: str) -> None:
    """As Ollama embeds them (tests/api/test_blank_inputs.py has the rest)."""
    with server.client() as client:
        ollama = client.post("/api/embed", json={"model": MODEL, "input": [blank]})
        openai = client.post(
            "/v1/embeddings", json={"model": MODEL, "input": [blank], "encoding_format": "float"}
        )
    assert ollama.status_code == openai.status_code == 200, (ollama.text, openai.text)
    assert ollama.json()["embeddings"] == [openai.json()["data"][0]["embedding"]]


def test_the_empty_string_still_loads_without_embedding(server: GatewayServer) -> None:
    with server.client() as client:
        response = client.post("/api/embed", json={"model": MODEL, "input": ""})
    assert response.status_code == 200
    assert response.json()["embeddings"] == []


def _nested(depth: int) -> bytes:
    return b'{"model": "all-minilm", "input": "a", "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [65, 970, 3000])
@pytest.mark.parametrize("path", ["/api/embed", "/embed", "/v1/embeddings", "/api/show"])
def test_a_body_nested_too_deeply_is_a_400(server: GatewayServer, path: str, depth: int) -> None:
    """JSON decoders give up at ~1,000 levels with a RecursionError (which Litestar lets
    through), at a depth that moves with the caller's stack; a fixed bound (64) below it is
    the client's error on every route, whoever would have decoded the body."""
    headers = {"Content-Type": "application/json"}
    with server.client() as client:
        response = client.post(path, content=_nested(depth), headers=headers)
        if path.startswith("/v1/"):
            message = assert_openai_error(response, 400)["message"]
        else:
            message = assert_ollama_error(response, 400)
        assert "nested more than 64 levels deep" in message
        again = client.post("/api/embed", json={"model": MODEL, "input": "still fine"})
    assert again.status_code == 200


def test_a_body_nested_to_the_bound_is_decoded(server: GatewayServer) -> None:
    with server.client() as client:
        response = client.post("/api/embed", content=_nested(63))  # 64 with the outer object
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"inputs": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"inputs": "hel', "ends before the JSON value is complete"),
        (b"  ", "the body is empty"),
        (b'{"inputs": "hello", "zz": 1e400}', "out of range"),
        (b'{"inputs": "hello", "zz": NaN}', "invalid JSON"),
    ],
    ids=["lone-surrogate", "truncated", "blank", "out-of-range", "nan"],
)
def test_shared_embed_path_words_invalid_json_as_every_route(
    server: GatewayServer, body: bytes, needle: str
) -> None:
    """/embed picks TEI's or nomic-api-rs's shape from the body; a body that is not JSON to the
    routes' decoder is neither, so it is refused alike (whatever Python's lenient json.loads
    would have made of it) and in the same words as on /api/embed."""
    headers = {"Content-Type": "application/json"}
    with server.client() as client:
        for path in ("/embed", "/"):
            response = client.post(path, content=body, headers=headers)
            assert needle in assert_ollama_error(response, 400), path
