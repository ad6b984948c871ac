"""Request bodies: what every route refuses before decoding one (a content coding the server does
not decode, nesting past a fixed depth), and decoding by hand for routes that pick the body's
shape from its fields (TEI's /embed beside nomic-api-rs's), with errors worded as Litestar's own
validation errors are here."""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any, TypeVar

import msgspec
from litestar import Request

from gateway.api.json_errors import MAX_DEPTH, TOO_DEEP, invalid_json_message, nests_deeper_than
from gateway.errors import InvalidRequest, UnsupportedEncoding

T = TypeVar("T")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Scope-state key: the fast lane already found this request's body within MAX_DEPTH.
_SHALLOW = "gateway.body_within_depth"
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$")


def unsupported_codings(values: Iterable[str]) -> list[str]:
    """The content codings that Content-Encoding `values` name, but identity: the server decodes
    none, so such a body would reach the JSON decoder still compressed."""
    named = (coding.strip().lower() for value in values for coding in value.split(","))
    return [coding for coding in named if coding and coding != "identity"]


def refuse_undecoded_codings(request: Request[Any, Any, Any]) -> None:
    """A 415 for a body in a content coding the server does not decode, before anything reads
    it (this hook, and the API-key guard, which counts a limited key's inputs)."""
    if request.method not in BODY_METHODS:
        return
    if codings := unsupported_codings(request.headers.getall("content-encoding", [])):
        raise UnsupportedEncoding(
            f"Content-Encoding {', '.join(codings)} is not supported: send the request body "
            "uncompressed (identity)"
        )


def mark_shallow(scope: MutableMapping[str, Any]) -> None:
    scope.setdefault("state", {})[_SHALLOW] = True


async def refuse_bad_bodies(request: Request[Any, Any, Any]) -> None:
    """Every route's `before_request`, so the fast lane (which hands such bodies here) and
    Litestar's own decode always agree: a content coding the server does not decode is a 415
    (before the body is read), a body nested past MAX_DEPTH a 400."""
    refuse_undecoded_codings(request)
    if request.method not in BODY_METHODS or request.scope.get("state", {}).get(_SHALLOW):
        return
    if nests_deeper_than(await request.body(), MAX_DEPTH):
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
