"""Keys file parsing, token buckets, input counting and route scopes (no server)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.auth.guard import count_inputs, required_scope
from gateway.auth.keys import KeyRing, KeysFileError, Scope, keys_from_setting, parse_keys_file
from gateway.auth.limits import TokenBucket, retry_after_seconds

HEX = hashlib.sha256(b"secret").hexdigest()


def test_keys_file_entries() -> None:
    text = (
        f"keys:\n  - {{name: a, sha256: {HEX}}}\n"
        f"  - {{name: b, sha256: '{HEX.upper()}', scope: admin, requests_per_minute: 5,"
        " inputs_per_minute: 50}\n"
    )
    first, second = parse_keys_file(text, "keys.yaml")
    assert (first.name, first.scope, first.limited) == ("a", Scope.EMBED, False)
    assert (second.scope, second.requests_per_minute, second.inputs_per_minute) == (
        Scope.ADMIN,
        5,
        50,
    )
    assert second.digest == hashlib.sha256(b"secret").digest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys: [", "not valid YAML"),
        ("other: 1", "top-level 'keys:' list"),
        ("keys: [plain]", "key 1: expected a mapping"),
        (f"keys: [{{sha256: {HEX}}}]", "key 1: name is required"),
        ("keys: [{name: a, sha256: abc}]", "key 'a': sha256 must be 64 hex digits"),
        (f"keys: [{{name: a, sha256: {HEX}, scope: root}}]", "scope must be 'embed', 'metrics' or"),
        (f"keys: [{{name: a, sha256: {HEX}, requests_per_minute: 0}}]", "at least 1"),
        (f"keys: [{{name: a, sha256: {HEX}, inputs_per_minute: true}}]", "inputs_per_minute"),
        (f"keys: [{{name: a, sha256: {HEX}, key: plain}}]", "unknown field(s) key"),
        (f"keys: [{{name: a, sha256: {HEX}}}, {{name: a, sha256: {HEX}}}]", "used twice"),
    ],
)
def test_keys_file_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(KeysFileError, match=r"keys\.yaml") as raised:
        parse_keys_file(text, "keys.yaml")
    assert message in str(raised.value)


def test_setting_keys_are_plain_or_hashed_and_admin() -> None:
    plain, hashed = keys_from_setting(["secret", f"sha256:{HEX}"])
    assert plain.digest == hashed.digest and plain.scope == Scope.ADMIN
    assert (plain.name, hashed.name) == ("key-1", "key-2")
    with pytest.raises(KeysFileError, match="entry 1"):
        keys_from_setting(["sha256:nothex"])


def test_key_ring_finds_by_digest(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys: [{{name: file-key, sha256: {HEX}, scope: embed}}]\n")
    ring = KeyRing.from_settings(["other"], path)
    assert ring.enabled
    found = ring.find("secret")
    assert found is not None and found.name == "file-key"
    assert ring.find("nope") is None
    with pytest.raises(KeysFileError, match="cannot read"):
        KeyRing.from_settings([], tmp_path / "missing.yaml")
    assert not KeyRing.from_settings([], None).enabled


def test_token_bucket_refills_per_second() -> None:
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])  # one token a second
    bucket.take(60)
    assert bucket.wait_for(1) == pytest.approx(1.0)
    now[0] = 0.5
    assert bucket.wait_for(1) == pytest.approx(0.5)
    now[0] = 1000.0
    assert bucket.wait_for(60) == 0.0 and bucket.wait_for(61) == pytest.approx(1.0)
    assert retry_after_seconds(0.01) == 1 and retry_after_seconds(2.2) == 3


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b'{"model": "m", "input": ["a", "b", "c"]}', 3),
        (b'{"input": "one"}', 1),
        (b'{"query": "q", "documents": ["a", "b"]}', 2),
        (b'{"inputs": ["a", "b"]}', 2),
        (b'{"contents": ["x"]}', 1),
        (b"not json", 1),
        (b"[1, 2]", 1),
        (b'{"input": []}', 1),
        # OpenAI's token ids: a flat list of integers is one input, a list of lists one each.
        (b'{"model": "m", "input": [15339, 1917, 1234, 4321, 555, 666]}', 1),
        (b'{"model": "m", "input": [[1, 2], [3]]}', 2),
        (b'{"model": "m", "input": [[15339, 1917, 1234, 4321, 555, 666]]}', 1),
        (b'{"inputs": [101, 2023, 102]}', 1),
    ],
)
def test_inputs_are_counted_across_families(body: bytes, count: int) -> None:
    assert count_inputs(body) == count


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/api/embed", Scope.EMBED),
        ("/v1/embeddings", Scope.EMBED),
        ("/api/pull", Scope.ADMIN),
        ("/api/delete", Scope.ADMIN),
        ("/admin/models", Scope.ADMIN),
        ("/metrics", Scope.METRICS),
        ("/api/ps", Scope.EMBED),
    ],
)
def test_route_scopes(path: str, scope: Scope) -> None:
    assert required_scope(path) is scope


def test_scopes_grant_their_own_routes_and_admin_all() -> None:
    """Not an order: a scraper's metrics key embeds nothing, an embed key reads no metrics."""
    granted = {(k, n) for k in Scope for n in Scope if k.grants(n)}
    others = {(Scope.EMBED, Scope.EMBED), (Scope.METRICS, Scope.METRICS)}
    assert granted == {(Scope.ADMIN, n) for n in Scope} | others
    (key,) = parse_keys_file(f"keys: [{{name: m, sha256: {HEX}, scope: metrics}}]", "k.yaml")
    assert key.scope is Scope.METRICS


def test_setting_keys_must_be_printable_ascii() -> None:
    # The server reads headers as latin-1; curl sends UTF-8 and httpx refuses non-ASCII, so
    # such a key was accepted at start-up and then matched no client.
    for entry in ("clé-secret", "tab\tkey", "\u20ac"):
        with pytest.raises(KeysFileError) as raised:
            keys_from_setting(["fine", entry])
        assert str(raised.value) == "GATEWAY_API_KEYS entry 2: keys must be printable ASCII"
    assert len(keys_from_setting(["with space", "~!@#$%^&*()"])) == 2


UTF16_KEYS = f"keys: [{{name: file-key, sha256: {HEX}}}]\n".encode("utf-16")  # PowerShell 5's `>`


def test_a_keys_file_that_is_not_utf8_is_one_error_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_bytes(UTF16_KEYS)
    with pytest.raises(KeysFileError) as raised:
        KeyRing.from_settings([], path)
    assert str(raised.value) == f"{path}: not UTF-8 text (byte 0)"


@pytest.mark.parametrize("how", ["changed", "sighup"])
def test_a_reload_to_a_file_that_is_not_utf8_keeps_the_previous_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys: [{{name: file-key, sha256: {HEX}}}]\n")
    ring = KeyRing.from_settings([], path)
    monkeypatch.setattr("gateway.auth.keys.STAT_INTERVAL_SECONDS", 0.0)
    path.write_bytes(UTF16_KEYS)
    if how == "sighup":
        ring.request_reload()
    found = ring.find("secret")  # raised UnicodeDecodeError inside a request: a 500
    assert found is not None and found.name == "file-key"
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        f"keys file not reloaded, previous keys stay in force: {path}: not UTF-8 text (byte 0)"
    ]
