"""Responses of the embedding routes: the body, plus a header that says what was truncated."""

from __future__ import annotations

from typing import TypeVar

from litestar import Response

from gateway.services import EmbedResult

T = TypeVar("T")

TRUNCATED_HEADER = "X-Truncated-Inputs"


def with_truncated(body: T, truncated: list[int]) -> Response[T]:
    """200 with `body`; inputs (or rerank documents) cut to the model's length, by index.

    None of the wire formats has a field for it, so a header carries it: a client that sent
    truncate: true is told which inputs were cut instead of finding out from its results.
    """
    return Response(body, status_code=200, headers=truncated_headers(truncated))


def truncated_headers(truncated: list[int]) -> dict[str, str]:
    return {TRUNCATED_HEADER: ",".join(map(str, truncated))} if truncated else {}


def embedded(body: T, result: EmbedResult) -> Response[T]:
    return with_truncated(body, result.truncated)
