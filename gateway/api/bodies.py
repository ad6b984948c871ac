"""Decoding a JSON body by hand, for routes that pick the body's shape from its fields (TEI's
/embed beside nomic-api-rs's): errors read as Litestar's own validation errors do here."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from gateway.api.json_errors import MAX_DEPTH, TOO_DEEP, invalid_json_message, nests_deeper_than
from gateway.errors import InvalidRequest

T = TypeVar("T")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$")


async def refuse_deep_bodies(request: Request[Any, Any, Any]) -> None:
    """Every route's `before_request`: a body nested past MAX_DEPTH is a 400 on every path, so
    the fast lane (which hands such bodies here) and Litestar's own decode always agree."""
    if request.method in _WITH_BODY and nests_deeper_than(await request.body(), MAX_DEPTH):
        raise InvalidRequest(TOO_DEEP)


async def json_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw:
        raise InvalidRequest("missing request body")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:  # worded as for every other route
        raise InvalidRequest(invalid_json_message(str(exc), raw)) from None


def convert(raw: Any, shape: type[T]) -> T:
    """`raw` as `shape`, numbers from strings allowed as Litestar allows them; a mismatch is a
    400 that names the field ("inputs[1]: Expected `str`, got `int`")."""
    try:
        return msgspec.convert(raw, shape, strict=False)
    except msgspec.ValidationError as exc:
        match = _AT_PATH.match(str(exc))
        message, path = (match["message"], match["path"]) if match else (str(exc), None)
        if not path:
            raise InvalidRequest(f"request body: {message}") from None
        raise InvalidRequest(f"{path}: {message}", param=path.split("[")[0]) from None
