"""Say what is wrong with a request body that is not valid JSON.

msgspec reports a lone UTF-16 surrogate escape ("\\ud800" with no partner) as "Input data was
truncated", which sends people looking for a cut-off upload; the body itself tells the two apart.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState

_HIGH = rb"\\u[dD][89abAB][0-9a-fA-F]{2}"
_LOW = rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
LONE_SURROGATE = re.compile(rb"%s(?!%s)|(?<!%s)%s" % (_HIGH, _LOW, _HIGH, _LOW))


# msgspec and the json module give up at ~1,000 levels (the interpreter's recursion limit, less
# the caller's stack), so where exactly depends on who decodes; every body deeper than this
# fixed bound is refused before any decoder sees it. No body of these APIs nests past a few.
MAX_DEPTH = 64
TOO_DEEP = f"request body: arrays or objects are nested more than {MAX_DEPTH} levels deep"
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def nests_deeper_than(body: bytes, depth: int) -> bool:
    """Whether `body`'s arrays and objects nest more than `depth` levels (strings skipped).

    Where a decoder gives up depends on how deep the caller's stack already is, so two callers
    can disagree about one body; a fixed bound well below that lets them agree.
    """
    if body.count(b"[") + body.count(b"{") <= depth:  # the common case, in C
        return False
    level = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b'""', body)):
        level += 1 if bracket.group() in (b"[", b"{") else -1
        if level > depth:
            return True
    return False


def received_body(request: Request[Any, Any, Any]) -> bytes | None:
    """The body as already read for this request (None if it was never read)."""
    body: bytes | None = value_or_default(ScopeState.from_scope(request.scope).body, None)
    return body


def invalid_json_message(detail: str, body: bytes | None) -> str:
    if body is not None and (match := LONE_SURROGATE.search(body)):
        escape = match.group().decode()
        return (
            f"invalid JSON in request body: {escape} at byte {match.start()} is an unpaired "
            "UTF-16 surrogate escape, which encodes no character; send the text as UTF-8 or "
            "as a complete surrogate pair"
        )
    if body is not None and not body.strip():
        return "invalid JSON in request body: the body is empty"
    if "truncated" in detail.lower():
        return "invalid JSON in request body: it ends before the JSON value is complete"
    return f"invalid JSON in request body: {detail}"
