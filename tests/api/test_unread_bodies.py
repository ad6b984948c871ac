"""Refusals answered without reading the body: a missing key (401), a body over the size limit
(413), a content coding the server does not decode (415). Each comes in its family's shape; on
the paths TEI shares with other families (/embed, POST /, /rerank), where no body can decide, in
TEI's, which is Ollama's {"error"} plus `error_type` at the same status, so either family's
client reads it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_ollama_error, assert_openai_error, assert_tei_error
from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer

KEY = "gw-unread-key-3e9b07"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_BODY = 4096
OVERSIZED = "x" * (MAX_BODY + 1)
SHARED_PATHS = ("/embed", "/", "/rerank")


@pytest.fixture(scope="module")
def keyed(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = bundled_registry_in(tmp_path_factory.mktemp("unread"))
    env = {
        "GATEWAY_API_KEYS": KEY,
        "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
        "GATEWAY_AUTH_FAILURES_PER_MINUTE": "100000",
    }
    with GatewayServer(registry=registry, env=env) as running:
        yield running


@pytest.mark.parametrize("path", SHARED_PATHS)
@pytest.mark.parametrize(
    "body",
    [{"inputs": "hi"}, {"input": "hi"}, {"query": "q", "texts": ["a"]}],
    ids=["tei", "nomic-api-rs", "tei-rerank"],
)
def test_a_missing_key_on_a_shared_path_is_tei_shaped(
    keyed: GatewayServer, path: str, body: dict[str, object]
) -> None:
    response = httpx.post(keyed.url + path, json=body)
    assert_tei_error(response, 401, "Unauthorized", "missing API key")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", SHARED_PATHS)
def test_a_body_over_the_limit_on_a_shared_path_is_tei_shaped(
    keyed: GatewayServer, path: str
) -> None:
    for body in ({"inputs": OVERSIZED}, {"input": OVERSIZED}):
        response = httpx.post(keyed.url + path, json=body, headers=AUTH)
        assert_tei_error(response, 413, "Validation", "too large")


def test_a_body_over_the_limit_elsewhere_keeps_its_family_shape(keyed: GatewayServer) -> None:
    with keyed.client(headers=AUTH) as client:
        ollama = client.post("/api/embed", json={"model": "all-minilm", "input": OVERSIZED})
        assert_ollama_error(ollama, 413, "too large")
        openai = client.post("/v1/embeddings", json={"model": "all-minilm", "input": OVERSIZED})
        assert_openai_error(openai, 413, "too large")
        tei = client.post("/embed_all", json={"inputs": OVERSIZED})
        assert_tei_error(tei, 413, "Validation", "too large")


EMBED = json.dumps({"model": "all-minilm", "input": "hi"}).encode()
TEI_BODY = b'{"inputs": "hi"}'
# (path, a body the route takes, the family whose shape its errors have)
ENCODED = [
    ("/api/embed", EMBED, "ollama"),
    ("/api/rerank", b'{"model": "all-minilm", "query": "q", "documents": ["a"]}', "ollama"),
    ("/v1/embeddings", EMBED, "openai"),
    ("/v2/embed", b'{"model": "all-minilm", "texts": ["hi"]}', "openai"),
    ("/tokenize", TEI_BODY, "tei"),
    *((path, body, "tei") for path in SHARED_PATHS for body in (TEI_BODY, b'{"input": "hi"}')),
]


def assert_family_error(
    family: str, response: httpx.Response, status: int, *fragments: str
) -> None:
    if family == "openai":
        assert_openai_error(response, status, *fragments, code="unsupported_content_encoding")
    elif family == "tei":
        assert_tei_error(response, status, "Validation", *fragments)
    else:
        assert_ollama_error(response, status, *fragments)


@pytest.mark.parametrize(("path", "body", "family"), ENCODED)
@pytest.mark.parametrize(
    ("coding", "named"),
    [("gzip", "gzip"), ("br", "br"), ("GZIP", "gzip"), ("gzip, identity", "gzip")],
)
def test_an_undecoded_content_coding_is_415_in_the_family_shape(
    keyed: GatewayServer, path: str, body: bytes, family: str, coding: str, named: str
) -> None:
    """RFC 9110 8.4: a server that does not support a request's content coding answers 415;
    15.5.16: with Accept-Encoding naming the codings it does take."""
    sent = gzip.compress(body) if coding.lower().startswith("gzip") else body
    response = httpx.post(
        keyed.url + path, content=sent, headers={**AUTH, "Content-Encoding": coding}
    )
    assert_family_error(family, response, 415, f"Content-Encoding {named} is not supported")
    assert "uncompressed" in response.text
    assert response.headers["accept-encoding"] == "identity"


def test_a_plain_body_labelled_gzip_is_refused_too(keyed: GatewayServer) -> None:
    """Decoding it anyway would answer a client whose body is not what it says it is."""
    response = httpx.post(
        keyed.url + "/api/embed", content=EMBED, headers={**AUTH, "Content-Encoding": "gzip"}
    )
    assert_ollama_error(response, 415, "gzip")


@pytest.mark.parametrize("coding", ["identity", "Identity", "identity, identity", ""])
def test_identity_is_no_coding(keyed: GatewayServer, coding: str) -> None:
    for path, body in (("/api/embed", EMBED), ("/embed", TEI_BODY)):
        response = httpx.post(
            keyed.url + path, content=body, headers={**AUTH, "Content-Encoding": coding}
        )
        assert response.status_code == 200, response.text


def test_a_request_without_a_key_is_401_before_its_coding_is_judged(keyed: GatewayServer) -> None:
    response = httpx.post(
        keyed.url + "/api/embed", content=EMBED, headers={"Content-Encoding": "br"}
    )
    assert_ollama_error(response, 401, "key")


def test_the_server_stays_healthy(keyed: GatewayServer) -> None:
    with keyed.client(headers=AUTH) as client:
        assert client.post("/embed", json={"inputs": "still working"}).status_code == 200
    assert "Traceback" not in keyed.log()
