"""API keys and CORS on the real server.

With GATEWAY_API_KEYS set, every route but liveness needs a key, sent as `Authorization: Bearer`
(what every surveyed client sends) or `X-API-Key`; a refusal is 401 in the route family's shape.
CORS allows Ollama's local origins (localhost, 127.0.0.1 and 0.0.0.0 at any port, and the
desktop-app schemes) plus the configured ones; a request from any other origin is refused 403
in its path's shape before it runs, as Ollama refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import ollama
import openai
import pytest

from tests.support.api import (
    assert_ollama_error,
    assert_openai_error,
    assert_tei_error,
    ollama_embed,
)
from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer

# Distinctive values, so that finding one in a response body cannot be a coincidence.
KEY_1 = "gw-test-key-one-4f1c9a"
KEY_2 = "gw-test-key-two-b7e20d"
APP_ORIGIN = "https://app.example.com"
EXTENSIONS = "chrome-extension://*"  # OLLAMA_ORIGINS' documented wildcard form
LOCAL_ORIGINS = [
    "http://localhost:3000",
    "http://127.0.0.1:5173",
    "http://localhost",
    "https://localhost:8443",
    "http://0.0.0.0:3000",
    "http://[::1]:8080",
    "app://obsidian.md",
    "tauri://localhost",
    "vscode-webview://1bcd2ef",
    "vscode-file://vscode-app",
    "file://",
]
MODEL = "all-minilm"


@pytest.fixture(scope="module")
def guarded(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    registry = bundled_registry_in(tmp_path_factory.mktemp("auth"))
    env = {
        "GATEWAY_API_KEYS": f"{KEY_1},{KEY_2}",
        "GATEWAY_CORS_ORIGINS": f"{APP_ORIGIN},{EXTENSIONS}",
        # These tests fail on purpose many times from one address (see test_scoped_keys.py).
        "GATEWAY_AUTH_FAILURES_PER_MINUTE": "100000",
    }
    with GatewayServer(registry=registry, env=env) as running:
        yield running


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_work_as_bearer_and_x_api_key(guarded: GatewayServer) -> None:
    with guarded.client(headers=bearer(KEY_2)) as client:
        by_bearer = ollama_embed(client, MODEL, ["hi"])
        assert client.get("/api/tags").status_code == 200
        assert client.get("/v1/models").status_code == 200
    with guarded.client(headers={"X-API-Key": KEY_1}) as client:
        by_header = ollama_embed(client, MODEL, ["hi"])
        assert client.post("/embed", json={"input": "hi"}).status_code == 200
    np.testing.assert_array_equal(by_bearer, by_header)


def test_clients_with_keys(guarded: GatewayServer) -> None:
    oa = openai.OpenAI(base_url=guarded.url + "/v1", api_key=KEY_1, max_retries=0)
    assert len(oa.embeddings.create(model=MODEL, input="hi").data[0].embedding) == 384
    ol = ollama.Client(host=guarded.url, headers=bearer(KEY_2))
    assert len(ol.embed(model=MODEL, input="hi").embeddings[0]) == 384


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-key"),
        # Older n8n credentials send "Bearer " with nothing after it (httpx strips the space).
        {"Authorization": "Bearer"},
        {"X-API-Key": "wrong-key"},
        {"Authorization": f"Basic {KEY_1}"},
        bearer(KEY_1 + "x"),
        bearer(KEY_1[:-1]),
    ],
    ids=["none", "wrong", "empty", "x-api-key-wrong", "basic", "longer", "shorter"],
)
def test_missing_or_wrong_key_is_401_in_each_family(
    guarded: GatewayServer, headers: dict[str, str]
) -> None:
    with guarded.client(headers=headers) as client:
        for path, body in (
            ("/api/embed", {"model": MODEL, "input": "hi"}),
            ("/api/show", {"model": MODEL}),
            ("/batch", {"inputs": ["hi"]}),
        ):
            response = client.post(path, json=body)
            assert_ollama_error(response, 401, "key")
            assert response.headers["www-authenticate"] == "Bearer"
        # A path TEI shares: the body is not read, and TEI's shape is Ollama's plus error_type.
        response = client.post("/embed", json={"input": "hi"})
        assert_tei_error(response, 401, "Unauthorized", "key")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_ollama_error(client.get("/api/tags"), 401, "key")
        assert_ollama_error(client.get("/info"), 401, "key")
        response = client.post("/v1/embeddings", json={"model": MODEL, "input": "hi"})
        assert_openai_error(response, 401, "key", code="invalid_api_key")
        assert_openai_error(client.get("/v1/models"), 401, "key", code="invalid_api_key")


def test_clients_without_keys_are_refused(guarded: GatewayServer) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=guarded.url + "/v1", api_key="nope", max_retries=0).models.list()
    assert refused.value.code == "invalid_api_key"
    with pytest.raises(ollama.ResponseError) as refused_ollama:
        ollama.Client(host=guarded.url).embed(model=MODEL, input="hi")
    assert refused_ollama.value.status_code == 401


def test_liveness_stays_open(guarded: GatewayServer) -> None:
    with guarded.client() as client:
        root = client.get("/")
        assert root.status_code == 200 and root.text == "Ollama is running"
        assert client.head("/").status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/api/version").status_code == 200


def test_info_never_shows_the_keys(guarded: GatewayServer) -> None:
    with guarded.client(headers=bearer(KEY_1)) as client:
        response = client.get("/info")
    assert response.status_code == 200
    assert KEY_1 not in response.text and KEY_2 not in response.text
    assert response.json()["settings"]["api_keys"] == "2 configured"
    assert KEY_1 not in guarded.log() and KEY_2 not in guarded.log()


def preflight(server: GatewayServer, origin: str, path: str = "/v1/embeddings"):
    with server.client() as client:
        return client.options(
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )


def test_cors_allows_ollamas_local_origins_by_default(server: GatewayServer) -> None:
    for origin in LOCAL_ORIGINS:
        response = preflight(server, origin)
        assert response.status_code in (200, 204), response.text
        assert response.headers["access-control-allow-origin"] == origin
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        with server.client() as client:
            simple = client.get("/api/tags", headers={"Origin": origin})
        assert simple.headers["access-control-allow-origin"] == origin


FOREIGN = ("https://evil.example", "http://localhost.evil.example", "null", "chrome-extension://x")


def test_cors_refuses_foreign_origins_by_default(server: GatewayServer) -> None:
    for origin in FOREIGN:
        response = preflight(server, origin)
        assert_openai_error(response, 403, f"origin {origin!r} is not allowed")
        assert "access-control-allow-origin" not in response.headers, origin
        with server.client() as client:
            simple = client.get("/api/tags", headers={"Origin": origin})
        assert_ollama_error(simple, 403, "not allowed", "GATEWAY_CORS_ORIGINS")
        assert "access-control-allow-origin" not in simple.headers, origin


def test_a_foreign_pages_simple_requests_do_no_work(server: GatewayServer) -> None:
    """A text/plain POST needs no preflight: the browser sends it, so the server must refuse it
    itself, or any page could make a local gateway pull, load or embed."""
    headers = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    with server.client(headers=headers) as client:
        pulled = client.post("/api/pull", content=b'{"model": "nomic-embed-text"}')
        assert_ollama_error(pulled, 403, "not allowed")
        embedded = client.post("/v1/embeddings", content=b'{"model": "all-minilm", "input": "x"}')
        assert_openai_error(embedded, 403, "not allowed", code="origin_not_allowed")
        tei = client.post("/embed", content=b'{"inputs": "x"}')
        assert_tei_error(tei, 403, "Forbidden", "not allowed")
        # An empty Origin is no origin (not a browser's cross-origin request), as in Ollama.
        assert client.get("/api/ps", headers={"Origin": ""}).status_code == 200


def test_a_page_may_call_the_server_that_served_it(server: GatewayServer) -> None:
    """Same origin (the /docs page's requests): the Origin is the Host the request went to."""
    headers = {"Host": "gateway.internal:8080", "Origin": "http://gateway.internal:8080"}
    with server.client(headers=headers) as client:
        assert client.get("/api/tags").status_code == 200


def test_dns_rebinding_is_not_the_pages_own_server(server: GatewayServer) -> None:
    """The test server listens on loopback: a page at evil.example whose name was rebound to
    127.0.0.1 sends Host and Origin of evil.example, which must not pass as its own server."""
    headers = {"Host": "evil.example:11434", "Origin": "http://evil.example:11434"}
    with server.client(headers=headers) as client:
        assert_ollama_error(client.get("/api/tags"), 403, "not allowed")


def test_a_refused_preflight_says_why_in_json(server: GatewayServer) -> None:
    with server.client() as client:
        response = client.options(
            "/api/embed",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-made-up-header",
            },
        )
    assert_ollama_error(response, 400, "Disallowed CORS headers")


def test_cors_origins_setting_opens_one_origin(guarded: GatewayServer) -> None:
    """The preflight carries no key (browsers never send one), yet must pass."""
    response = preflight(guarded, APP_ORIGIN)
    assert response.status_code in (200, 204), response.text
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    with guarded.client(headers={**bearer(KEY_1), "Origin": APP_ORIGIN}) as client:
        simple = client.post("/v1/embeddings", json={"model": MODEL, "input": "hi"})
    assert simple.status_code == 200
    assert simple.headers["access-control-allow-origin"] == APP_ORIGIN
    other = preflight(guarded, "https://other.example.com")
    assert "access-control-allow-origin" not in other.headers
    assert other.status_code == 403
    # Configured origins add to the local ones, and '*' inside one is a wildcard (Ollama's rule).
    for origin in ("http://localhost:3000", "chrome-extension://abcdefghijklmnop"):
        allowed = preflight(guarded, origin)
        assert allowed.status_code in (200, 204), (origin, allowed.text)
        assert allowed.headers["access-control-allow-origin"] == origin
