"""Decoding a JSON body by hand, for routes that pick the body's shape from its fields (TEI's
/embed beside nomic-api-rs's): errors read as Litestar's own validation errors do here."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from gateway.api.json_errors import TOO_DEEP
from gateway.errors import InvalidRequest

T = TypeVar("T")
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$")


async def json_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("missing request body")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"invalid JSON in request body: {exc}") from None
    except RecursionError:
        raise InvalidRequest(TOO_DEEP) from None


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
