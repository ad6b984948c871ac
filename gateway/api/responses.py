"""Responses of the embedding routes: the body, plus a header that says what was truncated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, TypeVar

import msgspec
import numpy as np
import orjson
from litestar import Response

from gateway.encoders import SparseVector
from gateway.services import EmbedResult

T = TypeVar("T")

TRUNCATED_HEADER = "X-Truncated-Inputs"
TRUNCATED_QUERY_HEADER = "X-Truncated-Query"  # rerank: "true" when the query was cut
_JSON_TYPE = (b"content-type", b"application/json")

# ASGI as the code below Litestar (the fast lane, the origin gate) handles it: plain mappings.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def with_truncated(body: T, truncated: list[int], query_truncated: bool = False) -> Response[T]:
    """200 with `body`; inputs (or rerank documents) cut to the model's length, by index, and
    whether a rerank query was cut.

    None of the wire formats has a field for it, so a header carries it: a client that sent
    truncate: true is told which inputs were cut instead of finding out from its results.
    """
    headers = truncated_headers(truncated)
    if query_truncated:
        headers[TRUNCATED_QUERY_HEADER] = "true"
    return Response(body, status_code=200, headers=headers)


def truncated_headers(truncated: list[int]) -> dict[str, str]:
    return {TRUNCATED_HEADER: ",".join(map(str, truncated))} if truncated else {}


def embedded(body: T, result: EmbedResult) -> Response[T]:
    return with_truncated(body, result.truncated)


def float_json(values: np.ndarray) -> Any:
    """`values` (float32, a vector or a matrix) as JSON numbers, already encoded: each in the
    shortest form that reads back as the same float32, as Ollama's Go server writes them
    ("0.0063856714", not float64's "0.006385671440511942"): ~42% fewer bytes, and twice as
    fast to write for 32x384 as float64 reprs (README, "Throughput and determinism").

    It fills fields declared list[float] or list[list[float]], which is what the OpenAPI
    document says it becomes; msgspec writes a Raw as it is.
    """
    exact = np.ascontiguousarray(values, dtype=np.float32)
    return msgspec.Raw(orjson.dumps(exact, option=orjson.OPT_SERIALIZE_NUMPY))


def sparse_json(vectors: Sequence[SparseVector]) -> Any:
    """TEI's sparse vectors, `[[{"index": int, "value": f32}]]`, already encoded: indices
    ascending, each value in float32's shortest form, as float_json writes vectors. It fills a
    field declared list[list[SparseValue]]."""
    rows = [
        [
            {"index": index, "value": value}
            for index, value in zip(v.indices.tolist(), v.values, strict=True)
        ]
        for v in vectors
    ]
    return msgspec.Raw(orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY))


async def send_json(send: Send, status: int, payload: bytes, headers: dict[str, str]) -> None:
    """A whole JSON answer written below Litestar (the fast lane, the origin gate)."""
    raw = [_JSON_TYPE, (b"content-length", b"%d" % len(payload))]
    for name, value in headers.items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
