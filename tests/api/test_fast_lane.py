"""The fast lane (gateway/api/fast_lane.py) answers exactly as Litestar does.

Two real servers on the same registry, keys and limits, one with the lane (the default) and one
with GATEWAY_FAST_LANE=0, get the same requests: successes, errors the answer raises, errors
Litestar words (bad JSON, wrong types, missing or limited keys, a body over the limit) and a
browser's CORS request. Status, headers and body must match; the lane's counter says which
requests it answered, so a lane that passed everything on could not pass these tests.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import bundled_registry_in
from tools.gateway_server import GatewayServer

MODEL = "all-minilm"
KEY = "gw-lane-key-5d0e1f"
LIMITED_KEY = "gw-lane-limited-key-9a4c72"
ORIGIN = "https://app.example.com"
MAX_BODY = 32768
# Differ between any two answers, so they are left out of the comparison.
VOLATILE_HEADERS = {"date", "x-request-id", "content-length"}
VOLATILE_FIELDS = {"total_duration", "load_duration", "time_ms", "id"}


@dataclass
class Servers:
    lane: GatewayServer
    framework: GatewayServer


@pytest.fixture(scope="module")
def servers(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    folder = tmp_path_factory.mktemp("lane")
    registry = bundled_registry_in(folder)
    keys = folder / "keys.yaml"
    keys.write_text(
        "keys:\n"
        f"  - {{name: plain, sha256: {_sha(KEY)}, scope: embed}}\n"
        f"  - {{name: limited, sha256: {_sha(LIMITED_KEY)}, scope: embed,"
        " requests_per_minute: 100000}\n"
    )
    env = {
        "GATEWAY_API_KEYS_FILE": str(keys),
        "GATEWAY_CORS_ORIGINS": ORIGIN,
        "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
        "GATEWAY_METRICS_PUBLIC": "1",
        "GATEWAY_CACHE_BYTES": "0",
        "GATEWAY_AUTH_FAILURES_PER_MINUTE": "100000",
    }
    with (
        GatewayServer(registry=registry, env=env) as lane,
        GatewayServer(registry=registry, env={**env, "GATEWAY_FAST_LANE": "0"}) as framework,
    ):
        yield Servers(lane, framework)


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _lane_counts(server: GatewayServer) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics").text
    counts = {"answered": 0.0, "passed": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "gateway_fast_lane_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] = sample.value
    return counts


@dataclass(frozen=True)
class Exchange:
    status: int
    headers: dict[str, str]
    body: Any
    raw_length: int
    declared_length: int | None = field(default=None)


def _send(server: GatewayServer, path: str, content: bytes, headers: dict[str, str]) -> Exchange:
    response = httpx.post(server.url + path, content=content, headers=headers, timeout=60)
    kept = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    declared = response.headers.get("content-length")
    return Exchange(
        response.status_code,
        kept,
        body,
        len(response.content),
        int(declared) if declared is not None else None,
    )


def _json(document: dict[str, Any]) -> bytes:
    return httpx.Request("POST", "http://x", json=document).content


AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
LONG = "word " * 600  # past all-minilm's 256 tokens


def _nested(depth: int) -> bytes:
    return b'{"model": "all-minilm", "input": "a", "x": ' + b"[" * depth + b"]" * depth + b"}"


DEEP = _nested(3000)

# (name, path, body, headers, answered by the lane)
CASES: list[tuple[str, str, bytes, dict[str, str], bool]] = [
    ("one string", "/api/embed", _json({"model": MODEL, "input": "hello there"}), AUTH, True),
    ("a list", "/api/embed", _json({"model": MODEL, "input": ["a", "b c", "d e f"]}), AUTH, True),
    ("empty string", "/api/embed", _json({"model": MODEL, "input": ""}), AUTH, True),
    ("X-API-Key", "/api/embed", _json({"model": MODEL, "input": "hi"}), {"X-API-Key": KEY}, True),
    ("no content type", "/api/embed", _json({"model": MODEL, "input": "hi"}),
     {"Authorization": f"Bearer {KEY}"}, True),
    ("coerced string", "/api/embed", _json({"model": MODEL, "input": "hi", "truncate": "true"}),
     AUTH, True),
    ("num_ctx cuts", "/api/embed",
     _json({"model": MODEL, "input": ["one two three four five", "x"], "options": {"num_ctx": 4}}),
     AUTH, True),
    ("unknown model", "/api/embed", _json({"model": "no-such-model", "input": "hi"}), AUTH, True),
    ("blank item", "/api/embed", _json({"model": MODEL, "input": ["ok", " "]}), AUTH, True),
    ("too long", "/api/embed", _json({"model": MODEL, "input": LONG, "truncate": False}), AUTH,
     True),
    ("bad keep_alive", "/api/embed", _json({"model": MODEL, "input": "hi", "keep_alive": "soon"}),
     AUTH, True),
    ("bad dimensions", "/api/embed", _json({"model": MODEL, "input": "hi", "dimensions": 5000}),
     AUTH, True),
    ("openai float", "/v1/embeddings", _json({"model": MODEL, "input": ["a", "b"]}), AUTH, True),
    ("openai base64", "/v1/embeddings",
     _json({"model": MODEL, "input": "a", "encoding_format": "base64"}), AUTH, True),
    ("openai token ids", "/v1/embeddings", _json({"model": MODEL, "input": [[9906, 1917]]}),
     AUTH, True),
    ("openai bad format", "/v1/embeddings",
     _json({"model": MODEL, "input": "a", "encoding_format": "int8"}), AUTH, True),
    ("openai bad item", "/v1/embeddings", _json({"model": MODEL, "input": [{"x": 1}]}), AUTH, True),
    ("infinity alias", "/embeddings", _json({"model": MODEL, "input": "a"}), AUTH, True),
    ("legacy prompt", "/api/embeddings", _json({"model": MODEL, "prompt": "hello"}), AUTH, True),
    ("legacy no prompt", "/api/embeddings", _json({"model": MODEL}), AUTH, True),
    ("legacy unknown model", "/api/embeddings", _json({"model": "nope", "prompt": "hi"}), AUTH,
     True),
    ("legacy wrong type", "/api/embeddings", _json({"model": MODEL, "prompt": ["a"]}), AUTH,
     False),
    ("tei one string", "/embed", _json({"inputs": "hello there"}), AUTH, True),
    ("tei a list", "/embed", _json({"inputs": ["a", "b c"], "model": MODEL}), AUTH, True),
    ("tei root", "/", _json({"inputs": "hi"}), AUTH, True),
    ("tei not normalized", "/embed", _json({"inputs": "hi", "normalize": False}), AUTH, True),
    ("tei prompt_name", "/embed", _json({"inputs": "hi", "prompt_name": "query"}), AUTH, True),
    ("tei unknown prompt_name", "/embed", _json({"inputs": "hi", "prompt_name": "nope"}), AUTH,
     True),
    ("tei empty batch", "/embed", _json({"inputs": []}), AUTH, True),
    ("tei left truncation", "/embed", _json({"inputs": "hi", "truncation_direction": "left"}),
     AUTH, True),
    ("tei too long", "/embed", _json({"inputs": LONG, "truncate": False}), AUTH, True),
    ("tei cut", "/embed", _json({"inputs": [LONG, "x"]}), AUTH, True),
    ("cohere v1", "/v1/embed", _json({"texts": ["hi", "there"]}), AUTH, True),
    ("cohere v2", "/v2/embed",
     _json({"model": MODEL, "texts": ["a", "b c"], "input_type": "search_query",
            "embedding_types": ["float"]}), AUTH, True),
    ("cohere v2 int8", "/v2/embed",
     _json({"model": MODEL, "texts": ["a"], "embedding_types": ["int8", "ubinary"]}), AUTH, True),
    ("cohere v2 inputs", "/v2/embed",
     _json({"model": MODEL, "inputs": [{"content": [{"type": "text", "text": "hi"}]}]}), AUTH,
     True),
    ("cohere v2 no model", "/v2/embed", _json({"texts": ["hi"]}), AUTH, True),
    ("cohere empty", "/v2/embed", _json({"model": MODEL, "texts": []}), AUTH, True),
    ("cohere bad type", "/v2/embed",
     _json({"model": MODEL, "texts": ["a"], "embedding_types": ["int4"]}), AUTH, True),
    ("native one", "/txt/embed", _json({"input": "hello there"}), AUTH, True),
    ("native task and dim", "/txt/embed", _json({"input": "hi", "task": "query", "dim": 128}),
     AUTH, True),
    ("native batch", "/batch", _json({"inputs": ["a", "b c"]}), AUTH, True),
    ("native txt batch", "/txt/batch", _json({"inputs": ["a"], "dim": "64"}), AUTH, True),
    ("native blank", "/txt/embed", _json({"input": " "}), AUTH, True),
    ("native bad dim", "/batch", _json({"inputs": ["a"], "dim": 5000}), AUTH, True),
    # nomic-api-rs's body on the paths it shares with TEI:
    ("nomic-api-rs body", "/embed", _json({"input": "hi", "model": MODEL}), AUTH, True),
    ("nomic-api-rs dim", "/embed", _json({"input": "hi", "dim": "64", "task": "query"}), AUTH,
     True),
    ("nomic-api-rs blank", "/embed", _json({"input": " "}), AUTH, True),
    ("nomic-api-rs on /", "/", _json({"input": "hello there"}), AUTH, True),
    # Litestar's to answer:
    ("native wrong type", "/txt/batch", _json({"inputs": "a"}), AUTH, False),
    ("cohere wrong type", "/v2/embed", _json({"model": MODEL, "texts": "a"}), AUTH, False),
    ("nomic-api-rs wrong type", "/embed", _json({"input": 5}), AUTH, False),
    ("both bodies", "/embed", _json({"input": "hi", "inputs": 5}), AUTH, False),
    ("both bodies, null inputs", "/", _json({"input": "hi", "inputs": None}), AUTH, False),
    ("a list body", "/embed", b'["hi"]', AUTH, False),
    # Litestar decodes the whole document first: what no route declares must still be JSON.
    ("bad UTF-8 elsewhere", "/embed", b'{"input": "a", "x": "\xff"}', AUTH, False),
    ("bad UTF-8 beside tei", "/", b'{"inputs": "a", "x": "\xff"}', AUTH, False),
    ("bad UTF-8 in a key", "/api/embed", b'{"model": "all-minilm", "input": "a", "x\xff": 1}',
     AUTH, False),
    ("number out of range", "/batch", b'{"inputs": ["a"], "x": 1e400}', AUTH, False),
    ("nested too deeply", "/embed", DEEP, AUTH, False),
    ("nested too deeply, ollama", "/api/embed", DEEP, AUTH, False),
    # Near the depth where decoders give up, which moves with the caller's stack: both refuse
    # anything past a fixed bound (64), and the lane leaves that to Litestar.
    *(
        (f"nested {depth}", path, _nested(depth), AUTH, False)
        for depth in (65, 950, 965, 970, 975, 990)
        for path in ("/api/embed", "/embed")
    ),
    ("nested 64 with the outer object", "/api/embed", _nested(63), AUTH, True),
    ("tei wrong type", "/embed", _json({"inputs": 5}), AUTH, False),
    ("tei browser", "/", _json({"inputs": "hi"}), {**AUTH, "Origin": ORIGIN}, False),
    ("broken JSON", "/api/embed", b'{"model": "all-minilm", "input": ', AUTH, False),
    ("wrong type", "/api/embed", _json({"model": MODEL, "input": 5}), AUTH, False),
    ("missing model", "/v1/embeddings", _json({"input": "a"}), AUTH, False),
    ("no key", "/api/embed", _json({"model": MODEL, "input": "hi"}), {}, False),
    ("unknown key", "/v1/embeddings", _json({"model": MODEL, "input": "hi"}),
     {"Authorization": "Bearer nope"}, False),
    ("limited key", "/api/embed", _json({"model": MODEL, "input": "hi"}),
     {"Authorization": f"Bearer {LIMITED_KEY}"}, False),
    ("browser", "/api/embed", _json({"model": MODEL, "input": "hi"}), {**AUTH, "Origin": ORIGIN},
     False),
    ("over the limit", "/api/embed", _json({"model": MODEL, "input": "x" * MAX_BODY}), AUTH,
     False),
    # A content coding the server does not decode is Litestar's 415, even on a body that would
    # decode as it stands; identity is no coding at all.
    ("gzip body", "/api/embed", gzip.compress(_json({"model": MODEL, "input": "hi"})),
     {**AUTH, "Content-Encoding": "gzip"}, False),
    ("gzip label, plain body", "/embed", _json({"inputs": "hi"}),
     {**AUTH, "Content-Encoding": "gzip"}, False),
    ("br label, openai", "/v1/embeddings", _json({"model": MODEL, "input": "hi"}),
     {**AUTH, "Content-Encoding": "br"}, False),
    ("identity", "/api/embed", _json({"model": MODEL, "input": "hi"}),
     {**AUTH, "Content-Encoding": "identity"}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "headers", "answered"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_lane_answers_as_litestar_does(
    servers: Servers, path: str, body: bytes, headers: dict[str, str], answered: bool
) -> None:
    before = _lane_counts(servers.lane)
    by_lane = _send(servers.lane, path, body, headers)
    after = _lane_counts(servers.lane)
    by_framework = _send(servers.framework, path, body, headers)
    assert by_lane.status == by_framework.status, (by_lane.body, by_framework.body)
    assert by_lane.headers == by_framework.headers
    assert by_lane.body == by_framework.body
    assert by_lane.declared_length == by_lane.raw_length
    outcome = "answered" if answered else "passed"
    assert after[outcome] == before[outcome] + 1, (before, after)
    assert _lane_counts(servers.framework) == {"answered": 0.0, "passed": 0.0}


def test_a_streamed_body_is_read_whole(servers: Servers) -> None:
    """A chunked body arrives in several messages; the lane joins them."""
    parts = [b'{"model": "all-minilm", ', b'"input": ["streamed", ', b'"body"]}']

    def chunks() -> Iterator[bytes]:
        yield from parts

    answers = [
        httpx.post(server.url + "/api/embed", content=chunks(), headers=AUTH)
        for server in (servers.lane, servers.framework)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["embeddings"] == answers[1].json()["embeddings"]
