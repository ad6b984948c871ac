"""Keys from a hashed keys file: scopes, rate limits, reloads, and no key text in any log."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_ollama_error, assert_openai_error, assert_tei_error
from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
EMBEDDER = secrets.token_urlsafe(24)
ADMIN = secrets.token_urlsafe(24)
LIMITED = secrets.token_urlsafe(24)
FRUGAL = secrets.token_urlsafe(24)
PLAIN = secrets.token_urlsafe(24)
LATECOMER = secrets.token_urlsafe(24)
WRONG = secrets.token_urlsafe(24)
THRIFTY = secrets.token_urlsafe(24)
SCRAPER = secrets.token_urlsafe(24)
ALL_KEYS = (EMBEDDER, ADMIN, LIMITED, FRUGAL, PLAIN, LATECOMER, WRONG, THRIFTY, SCRAPER)


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_yaml(*extra: str) -> str:
    entries = [
        f"  - {{name: embedder, sha256: {sha(EMBEDDER)}, scope: embed}}",
        f"  - {{name: admin, sha256: {sha(ADMIN)}, scope: admin}}",
        f"  - {{name: limited, sha256: {sha(LIMITED)}, requests_per_minute: 3}}",
        f"  - {{name: frugal, sha256: {sha(FRUGAL)}, inputs_per_minute: 10}}",
        f"  - {{name: thrifty, sha256: {sha(THRIFTY)}, inputs_per_minute: 2}}",
        f"  - {{name: scraper, sha256: {sha(SCRAPER)}, scope: metrics}}",
        *extra,
    ]
    return "keys:\n" + "\n".join(entries) + "\n"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    folder = tmp_path_factory.mktemp("keys")
    registry = bundled_registry_in(folder)
    keys_file = folder / "keys.yaml"
    keys_file.write_text(keys_yaml())
    env = {
        "GATEWAY_API_KEYS": PLAIN,
        "GATEWAY_API_KEYS_FILE": str(keys_file),
        "GATEWAY_LOG_LEVEL": "trace",  # every level: the no-key-in-logs check reads them all
        "GATEWAY_AUTH_FAILURES_PER_MINUTE": "1000",
    }
    with GatewayServer(registry=registry, env=env) as running:
        running.keys_file = keys_file  # type: ignore[attr-defined]
        yield running
    log = running.log()  # after exit: the server's stdout is block-buffered until then
    assert "authentication failed" in log and "scope embed" in log
    assert "previous keys stay in force" in log  # the broken keys file of the reload test
    for fingerprint in getattr(running, "fingerprints", []):
        assert fingerprint in log
    for key in ALL_KEYS:
        assert key not in log, "a key's text reached the log"


def embed(client: httpx.Client, key: str, inputs: list[str] | str = "hello") -> httpx.Response:
    return client.post("/api/embed", json={"model": MODEL, "input": inputs}, headers=auth(key))


def test_embed_scope_embeds_but_cannot_administer(keyed: GatewayServer) -> None:
    with keyed.client() as client:
        assert embed(client, EMBEDDER).status_code == 200
        openai = client.post(
            "/v1/embeddings", json={"model": MODEL, "input": "hi"}, headers=auth(EMBEDDER)
        )
        assert openai.status_code == 200
        for method, path in (
            ("POST", "/api/pull"),
            ("DELETE", "/api/delete"),
            ("GET", "/admin/models"),
        ):
            response = client.request(method, path, json={"model": MODEL}, headers=auth(EMBEDDER))
            assert_ollama_error(response, 403, "scope", path)
        assert client.get("/admin/models", headers=auth(ADMIN)).status_code == 200
        assert client.get("/admin/models", headers=auth(PLAIN)).status_code == 200
        assert embed(client, ADMIN).status_code == 200


def test_metrics_need_the_metrics_or_admin_scope(keyed: GatewayServer) -> None:
    """Counts by model and status are the operator's: an embedding client's key reads none,
    and a scraper's key (scope metrics) reads them and nothing else."""
    with keyed.client() as client:
        refused = client.get("/metrics", headers=auth(EMBEDDER))
        assert_ollama_error(refused, 403, "/metrics", "needs scope metrics or admin")
        assert_ollama_error(client.get("/metrics"), 401, "missing API key")
        for key in (SCRAPER, ADMIN, PLAIN):
            scraped = client.get("/metrics", headers=auth(key))
            assert scraped.status_code == 200 and "gateway_requests_total" in scraped.text
        assert_ollama_error(embed(client, SCRAPER), 403, "needs scope embed or admin")
        admin = client.get("/admin/models", headers=auth(SCRAPER))
        assert_ollama_error(admin, 403, "needs scope admin")


def test_wrong_and_missing_keys(keyed: GatewayServer) -> None:
    with keyed.client() as client:
        assert_ollama_error(embed(client, WRONG), 401, "invalid API key")
        response = client.post("/api/embed", json={"model": MODEL, "input": "x"})
        assert_ollama_error(response, 401, "missing API key")
    keyed.fingerprints = [f"sha256:{sha(WRONG)[:8]}"]  # type: ignore[attr-defined]


def test_request_rate_limit_answers_429_with_retry_after(keyed: GatewayServer) -> None:
    with keyed.client() as client:
        statuses = [embed(client, LIMITED).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = embed(client, LIMITED)
        assert_ollama_error(refused, 429, "3 requests per minute")
        assert 1 <= int(refused.headers["Retry-After"]) <= 20
        openai = client.post(
            "/v1/embeddings", json={"model": MODEL, "input": "hi"}, headers=auth(LIMITED)
        )
        body = assert_openai_error(openai, 429, "per minute", code="rate_limit_exceeded")
        assert body["type"] == "rate_limit_error"
        assert int(openai.headers["Retry-After"]) >= 1
        assert embed(client, EMBEDDER).status_code == 200  # other keys are not affected


def test_inputs_rate_limit_counts_inputs(keyed: GatewayServer) -> None:
    with keyed.client() as client:
        assert embed(client, FRUGAL, ["a"] * 6).status_code == 200
        refused = embed(client, FRUGAL, ["b"] * 6)
        assert_ollama_error(refused, 429, "10 inputs per minute")
        too_big = embed(client, FRUGAL, ["c"] * 11)
        assert_ollama_error(too_big, 400, "11 inputs", "at most 10 per minute")
        assert embed(client, FRUGAL, ["d"] * 3).status_code == 200  # what is left of the minute


def test_a_compressed_body_is_refused_unread_and_uncharged(keyed: GatewayServer) -> None:
    # The guard counts a limited key's inputs before any route hook runs; a body in a coding
    # the server does not decode is refused there first, in the path's family shape, and
    # neither its request nor its inputs are charged.
    gzipped = {**auth(THRIFTY), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    body = gzip.compress(json.dumps({"model": MODEL, "input": ["a"]}).encode())
    tei_body = gzip.compress(json.dumps({"inputs": "a"}).encode())
    with keyed.client() as client:
        for _ in range(3):
            refused = client.post("/api/embed", content=body, headers=gzipped)
            assert_ollama_error(refused, 415, "gzip")
        on_tei_path = client.post("/embed", content=tei_body, headers=gzipped)
        assert_tei_error(on_tei_path, 415, "Validation", "gzip")
        assert embed(client, THRIFTY, ["x", "y"]).status_code == 200  # the minute is intact


def test_health_shows_details_to_operator_keys_only(keyed: GatewayServer) -> None:
    """Models, memory and GPU are the operator's facts (/metrics, /admin/models): an admin or
    metrics key sees them; an embedding client's key, a wrong key or none gets the status."""
    with keyed.client() as client:
        for headers in ({}, auth(WRONG), auth(EMBEDDER), auth(LIMITED)):
            brief = client.get("/health", headers=headers)
            assert brief.status_code == 200 and brief.json() == {"status": "OK"}, headers
        for key in (ADMIN, SCRAPER, PLAIN):
            detailed = client.get("/health", headers=auth(key))
            assert detailed.status_code == 200
            view = detailed.json()
            assert view["status"] == "OK" and MODEL in view["models"] and "memory" in view
        # The probes answer every caller the same.
        for headers in ({}, auth(EMBEDDER), auth(SCRAPER), auth(ADMIN)):
            assert client.get("/health/live", headers=headers).json() == {"status": "alive"}
            assert client.get("/health/ready", headers=headers).json() == {"status": "ready"}


def test_keys_file_is_reloaded_on_change_and_on_sighup(keyed: GatewayServer) -> None:
    keys_file: Path = keyed.keys_file  # type: ignore[attr-defined]
    latecomer = f"  - {{name: latecomer, sha256: {sha(LATECOMER)}, scope: embed}}"
    with keyed.client() as client:
        assert embed(client, LATECOMER).status_code == 401
        keys_file.write_text(keys_yaml(latecomer))
        time.sleep(1.2)  # the file's stat is checked at most once a second
        assert embed(client, LATECOMER).status_code == 200

        # A change keeping size and mtime is seen on SIGHUP only: the entry now holds WRONG's hash.
        before = keys_file.stat()
        keys_file.write_text(keys_yaml(latecomer.replace(sha(LATECOMER), sha(WRONG))))
        os.utime(keys_file, ns=(before.st_atime_ns, before.st_mtime_ns))
        time.sleep(1.2)
        assert embed(client, LATECOMER).status_code == 200  # not re-read yet
        assert keyed.process is not None
        keyed.process.send_signal(signal.SIGHUP)
        # The signal is handled on the server's loop: poll (generously) rather than sleep.
        deadline = time.monotonic() + 30
        while embed(client, LATECOMER).status_code != 401:
            assert time.monotonic() < deadline, "SIGHUP did not reload the keys file"
            time.sleep(0.1)
        assert embed(client, WRONG).status_code == 200

        # A broken file leaves the previous keys in force, and says why in the log.
        keys_file.write_text("keys: [not a mapping]\n")
        time.sleep(1.2)
        assert embed(client, EMBEDDER).status_code == 200
        keys_file.write_text(keys_yaml())
        time.sleep(1.2)
        assert embed(client, WRONG).status_code == 401


def test_failed_authentications_are_limited_per_address(
    default_model_dir: Path, tmp_path: Path
) -> None:
    registry = bundled_registry_in(tmp_path)
    env = {"GATEWAY_API_KEYS": PLAIN, "GATEWAY_AUTH_FAILURES_PER_MINUTE": "3"}
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        assert [embed(client, WRONG).status_code for _ in range(3)] == [401, 401, 401]
        refused = embed(client, PLAIN)  # even a good key, until the address's minute refills
        assert_ollama_error(refused, 429, "failed authentications")
        assert int(refused.headers["Retry-After"]) >= 1
        assert client.get("/health/live").status_code == 200
    log = server.log()  # after exit: the server's stdout is block-buffered until then
    assert log.count("authentication failed from 127.0.0.1") == 3
    assert WRONG not in log and PLAIN not in log


def test_requests_without_a_key_are_logged_but_do_not_lock_out_the_address(
    default_model_dir: Path, tmp_path: Path
) -> None:
    """A keyless client (a scraper without its key file) guesses nothing: its 401s are logged
    but do not use up the address's allowance for wrong keys."""
    registry = bundled_registry_in(tmp_path)
    env = {"GATEWAY_API_KEYS": PLAIN, "GATEWAY_AUTH_FAILURES_PER_MINUTE": "3"}
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        keyless = [
            client.post("/api/embed", json={"model": MODEL, "input": "hi"}) for _ in range(5)
        ]
        assert [response.status_code for response in keyless] == [401] * 5
        assert client.get("/metrics").status_code == 401
        assert embed(client, PLAIN).status_code == 200
    log = server.log()
    assert log.count("authentication failed from 127.0.0.1") == 6
    assert log.count("no key presented") == 6


@pytest.mark.parametrize("trusted", ["127.0.0.1", "none"])
def test_behind_a_trusted_proxy_the_limit_is_per_forwarded_client(
    default_model_dir: Path, tmp_path: Path, trusted: str
) -> None:
    """The test client stands in for a reverse proxy on 127.0.0.1 that names its clients in
    X-Forwarded-For: trusted (the default), one client's failures do not lock out another."""
    registry = bundled_registry_in(tmp_path)
    env = {
        "GATEWAY_API_KEYS": PLAIN,
        "GATEWAY_AUTH_FAILURES_PER_MINUTE": "3",
        "GATEWAY_TRUSTED_PROXIES": trusted,
    }

    def embed_from(client: httpx.Client, address: str, key: str) -> httpx.Response:
        headers = {**auth(key), "X-Forwarded-For": address}
        return client.post("/api/embed", json={"model": MODEL, "input": "hi"}, headers=headers)

    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        attacker, other = "203.0.113.9", "198.51.100.4"
        assert [embed_from(client, attacker, WRONG).status_code for _ in range(3)] == [401] * 3
        assert_ollama_error(embed_from(client, attacker, PLAIN), 429, "failed authentications")
        # Trusted: the other client is its own address. Not trusted: everyone is the proxy.
        assert embed_from(client, other, PLAIN).status_code == (429 if trusted == "none" else 200)
    log = server.log()
    seen = "127.0.0.1" if trusted == "none" else attacker
    assert log.count(f"authentication failed from {seen}") == 3


def test_health_is_no_unmetered_key_oracle(default_model_dir: Path, tmp_path: Path) -> None:
    """/health shows details to a valid key: wrong keys there count as failures, and over the
    limit it answers as to a caller without a key (200, so keyless health checks still pass)."""
    registry = bundled_registry_in(tmp_path)
    env = {"GATEWAY_API_KEYS": PLAIN, "GATEWAY_AUTH_FAILURES_PER_MINUTE": "3"}
    with GatewayServer(registry=registry, env=env) as server, server.client() as client:
        assert "models" in client.get("/health", headers=auth(PLAIN)).json()
        for _ in range(3):
            wrong = client.get("/health", headers=auth(WRONG))
            assert wrong.status_code == 200 and wrong.json() == {"status": "OK"}
        over = client.get("/health", headers=auth(PLAIN))
        assert over.status_code == 200 and over.json() == {"status": "OK"}
        assert client.get("/health").json() == {"status": "OK"}
        assert_ollama_error(embed(client, PLAIN), 429, "failed authentications")
    log = server.log()
    assert log.count("authentication failed from 127.0.0.1 on /health") == 3
    assert WRONG not in log and PLAIN not in log
