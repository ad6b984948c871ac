"""Bad input gets the documented status and its API family's error shape, on every route family,
and the server stays healthy afterwards.

Ollama and native routes: {"error": "<message>"}. OpenAI routes: {"error": {"message", "type",
"param", "code"}}. Each case names a fragment its message must contain, so a 400 for the wrong
reason fails too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.api import assert_ollama_error, assert_openai_error, ollama_embed
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
TOO_LONG = "word " * 600  # 602 tokens: cut to 256 when truncating; past the 512 positions
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Case:
    path: str
    status: int
    fragments: tuple[str, ...]
    json: Any = None
    content: bytes | None = None
    method: str = "POST"
    code: str | None = None  # OpenAI error code, when the contract fixes one
    param: str | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))

    def send(self, client: httpx.Client) -> httpx.Response:
        if self.json is not None:
            return client.request(self.method, self.path, json=self.json)
        return client.request(self.method, self.path, content=self.content, headers=self.headers)


def embed(**body: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": "hi", **body}


OLLAMA_CASES = {
    "embed-malformed-json": Case("/api/embed", 400, ("json",), content=b'{"model": "all-'),
    "embed-not-json": Case("/api/embed", 400, ("json",), content=b"model=all-minilm"),
    "embed-missing-body": Case("/api/embed", 400, ("missing request body",), content=b""),
    "embed-body-array": Case("/api/embed", 400, ("object",), json=[1, 2]),
    "embed-no-model": Case("/api/embed", 400, ("model",), json={"input": "hi"}),
    "embed-empty-model": Case("/api/embed", 400, ("model is required",), json=embed(model="")),
    "embed-model-number": Case("/api/embed", 400, ("model",), json=embed(model=7)),
    "embed-input-number": Case("/api/embed", 400, ("input",), json=embed(input=5)),
    "embed-input-ints": Case("/api/embed", 400, ("input",), json=embed(input=[1, 2])),
    "embed-input-object": Case("/api/embed", 400, ("input",), json=embed(input=[{"a": 1}])),
    "embed-truncate-string": Case("/api/embed", 400, ("truncate",), json=embed(truncate="no")),
    "embed-dimensions-string": Case("/api/embed", 400, ("dimensions",), json=embed(dimensions="a")),
    "embed-dimensions-float": Case(
        "/api/embed", 400, ("dimensions", "from 1 to 384"), json=embed(dimensions=12.5)
    ),
    "embed-too-long": Case(
        "/api/embed", 400, ("context length",), json=embed(input=["ok", TOO_LONG], truncate=False)
    ),
    "embed-keep-alive-unitless": Case(
        "/api/embed", 400, ('missing unit in duration "300"',), json=embed(keep_alive="300")
    ),
    "embed-keep-alive-garbage": Case(
        "/api/embed", 400, ("invalid duration",), json=embed(keep_alive="soon")
    ),
    "embed-keep-alive-bool": Case("/api/embed", 400, ("keep_alive",), json=embed(keep_alive=True)),
    "embed-keep-alive-object": Case("/api/embed", 400, ("keep_alive",), json=embed(keep_alive={})),
    "rerank-empty-model": Case(
        "/api/rerank",
        400,
        ("model is required",),
        json={"model": "", "query": "q", "documents": ["a"]},
    ),
    "embed-keep-alive-overflow": Case(
        "/api/embed",
        400,
        ('invalid duration "99999999999999h"',),
        json=embed(keep_alive="99999999999999h"),
    ),
    "embed-too-many-inputs": Case(
        "/api/embed", 400, ("too many inputs",), json=embed(input=["a"] * 2049)
    ),
    "embed-too-many-chars": Case(
        "/api/embed", 400, ("characters",), json=embed(input="a" * 200_001)
    ),
    "embed-unknown-model": Case("/api/embed", 404, ("nope", "not found"), json=embed(model="nope")),
    "embed-not-pulled": Case(
        "/api/embed", 404, ("not found", "pull"), json=embed(model="nomic-embed-text")
    ),
    "embeddings-malformed": Case("/api/embeddings", 400, ("json",), content=b"{"),
    "embeddings-missing-body": Case("/api/embeddings", 400, ("missing request body",), content=b""),
    "embeddings-prompt-number": Case(
        "/api/embeddings", 400, ("prompt",), json={"model": MODEL, "prompt": 5}
    ),
    "embeddings-unknown-model": Case(
        "/api/embeddings", 404, ("not found",), json={"model": "nope", "prompt": "hi"}
    ),
    "embeddings-keep-alive": Case(
        "/api/embeddings",
        400,
        ("missing unit",),
        json={"model": MODEL, "prompt": "hi", "keep_alive": "300"},
    ),
    "show-no-model": Case("/api/show", 400, ("model is required",), json={}),
    "show-malformed": Case("/api/show", 400, ("json",), content=b'{"model"'),
    "show-unknown-model": Case("/api/show", 404, ("not found",), json={"model": "nope"}),
    "show-not-pulled": Case("/api/show", 404, ("not found",), json={"model": "nomic-embed-text"}),
    "embed-wrong-method": Case("/api/embed", 405, ("method",), method="GET", content=b""),
    "unknown-path": Case("/api/nope", 404, ("not found",), method="GET", content=b""),
    "native-malformed": Case("/embed", 400, ("json",), content=b"{oops}"),
    "native-missing-body": Case("/embed", 400, ("missing request body",), content=b""),
    "native-no-input": Case("/embed", 400, ("input",), json={"dim": 384}),
    "native-input-number": Case("/txt/embed", 400, ("input",), json={"input": 3}),
    "native-dim-string": Case("/embed", 400, ("dim",), json={"input": "hi", "dim": "x"}),
    "native-batch-not-list": Case("/batch", 400, ("inputs",), json={"inputs": "hi"}),
    "native-batch-bad-item": Case("/txt/batch", 400, ("inputs",), json={"inputs": ["a", 1]}),
}


def v1(**body: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": "hi", **body}


def cohere_part(part: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "inputs": [{"content": [part]}]}


OPENAI_CASES = {
    "cohere-image-url-string": Case(
        "/v2/embed",
        400,
        ("inputs[0].content[0] must be",),
        json=cohere_part({"type": "image_url", "image_url": "https://example.com/a.png"}),
    ),
    "cohere-image-url-list": Case(
        "/v2/embed",
        400,
        ("inputs[0].content[0] must be",),
        json=cohere_part({"type": "image_url", "image_url": ["https://example.com/a.png"]}),
    ),
    "malformed-json": Case("/v1/embeddings", 400, ("json",), content=b'{"model": '),
    "missing-body": Case("/v1/embeddings", 400, ("missing request body",), content=b""),
    "no-input": Case("/v1/embeddings", 400, ("input",), json={"model": MODEL}),
    "no-model": Case("/v1/embeddings", 400, ("model",), json={"input": "hi"}),
    "empty-model": Case("/v1/embeddings", 400, ("model",), json=v1(model="")),
    "input-number": Case("/v1/embeddings", 400, ("input",), json=v1(input=5), param="input"),
    "input-empty-list": Case("/v1/embeddings", 400, ("empty",), json=v1(input=[]), param="input"),
    "input-null-item": Case("/v1/embeddings", 400, ("input",), json=v1(input=[None])),
    "input-token-id-outside-vocabulary": Case(
        "/v1/embeddings",
        400,
        ("input[1]", "token id 100300", "cl100k_base"),
        json=v1(input=[[9906, 1917], [100300]]),
        param="input",
    ),
    "input-token-ids-mixed": Case(
        "/v1/embeddings",
        400,
        ("input[1]", "token ids"),
        json=v1(input=[[9906], "a"]),
        param="input",
    ),
    "unknown-model": Case(
        "/v1/embeddings",
        404,
        ("nope",),
        json=v1(model="nope"),
        code="model_not_found",
        param="model",
    ),
    "not-pulled": Case(
        "/v1/embeddings",
        404,
        ("not found",),
        json=v1(model="nomic-embed-text"),
        code="model_not_found",
    ),
    "dimensions-0": Case(
        "/v1/embeddings", 400, ("dimensions",), json=v1(dimensions=0), param="dimensions"
    ),
    "dimensions-negative": Case(
        "/v1/embeddings", 400, ("dimensions",), json=v1(dimensions=-5), param="dimensions"
    ),
    "dimensions-above": Case(
        "/v1/embeddings", 400, ("dimensions",), json=v1(dimensions=385), param="dimensions"
    ),
    "dimensions-not-integer": Case(
        "/v1/embeddings",
        400,
        ("dimensions", "from 1 to 384"),
        json=v1(dimensions=100.5),
        param="dimensions",
    ),
    "dimensions-string": Case("/v1/embeddings", 400, ("dimensions",), json=v1(dimensions="64")),
    "encoding-format": Case(
        "/v1/embeddings",
        400,
        ("Invalid value for 'encoding_format' = binary",),
        json=v1(encoding_format="binary"),
        param="encoding_format",
    ),
    "too-long": Case(
        "/v1/embeddings", 400, ("context length",), json=v1(input=TOO_LONG, truncate=False)
    ),
    "input-type": Case(
        "/v1/embeddings", 400, ("input_type",), json=v1(input_type="poem"), param="input_type"
    ),
    "model-unknown": Case(
        "/v1/models/nope", 404, ("nope",), method="GET", content=b"", code="model_not_found"
    ),
    "model-not-pulled": Case(
        "/v1/models/nomic-embed-text",
        404,
        ("'nomic-embed-text'",),
        method="GET",
        content=b"",
        code="model_not_found",
    ),
    "unknown-path": Case("/v1/nope", 404, ("not found",), method="GET", content=b""),
    "wrong-method": Case("/v1/embeddings", 405, ("method",), method="GET", content=b""),
}


@pytest.mark.parametrize("case", OLLAMA_CASES.values(), ids=OLLAMA_CASES.keys())
def test_ollama_and_native_errors(server: GatewayServer, case: Case) -> None:
    with server.client() as client:
        assert_ollama_error(case.send(client), case.status, *case.fragments)


@pytest.mark.parametrize("case", OPENAI_CASES.values(), ids=OPENAI_CASES.keys())
def test_openai_errors(server: GatewayServer, case: Case) -> None:
    with server.client() as client:
        error = assert_openai_error(
            case.send(client), case.status, *case.fragments, code=case.code, param=case.param
        )
    expected_type = "invalid_request_error" if case.status < 500 else "server_error"
    assert error["type"] == expected_type


def test_too_long_input_is_cut_by_default(server: GatewayServer) -> None:
    """truncate defaults to true (Ollama's default): the same input is embedded, cut to 256."""
    with server.client() as client:
        vectors = ollama_embed(client, MODEL, [TOO_LONG])
        response = client.post("/v1/embeddings", json=v1(input=TOO_LONG))
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["prompt_tokens"] == 256
    assert vectors.shape == (1, 384)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/embed", embed()),
        ("/api/embeddings", {"model": MODEL, "prompt": "hi"}),
        ("/api/show", {"model": MODEL}),
        ("/v1/embeddings", v1()),
        ("/embed", {"input": "hi"}),
        ("/txt/embed", {"input": "hi"}),
        ("/batch", {"inputs": ["hi"]}),
        ("/txt/batch", {"inputs": ["hi"]}),
    ],
)
def test_successful_posts_answer_200_not_201(server: GatewayServer, path: str, body: dict) -> None:
    with server.client() as client:
        assert client.post(path, json=body).status_code == 200


def test_server_is_healthy_after_bad_input(server: GatewayServer) -> None:
    assert server.process is not None and server.process.poll() is None, "the server is running"
    with server.client() as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "OK"
        assert ollama_embed(client, MODEL, ["still working"]).shape == (1, 384)
    assert "Traceback" not in server.log(), "bad input must not reach an unhandled exception"


@pytest.mark.parametrize("keep_alive", [1e12, 2**63, 1e308])
def test_a_keep_alive_past_any_clock_means_forever(
    server: GatewayServer, keep_alive: float
) -> None:
    """Longer than Go's largest Duration (what Ollama can hold) reads as forever; /api/ps must
    still answer (it once failed with a date no clock holds, until the next request)."""
    with server.client() as client:
        assert client.post("/api/embed", json=embed(keep_alive=keep_alive)).status_code == 200
        ps = client.get("/api/ps")
        assert ps.status_code == 200, ps.text
        (row,) = [m for m in ps.json()["models"] if m["name"].split(":")[0] == MODEL]
        assert row["expires_at"] > "2200"  # the "forever" of a negative keep_alive
        assert client.post("/api/embed", json=embed()).status_code == 200
