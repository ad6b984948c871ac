"""Say what is wrong with a request body that is not valid JSON.

msgspec reports a lone UTF-16 surrogate escape ("\\ud800" with no partner) as "Input data was
truncated", which sends people looking for a cut-off upload; the body itself tells the two apart.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from litestar import Request
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState

_HIGH = rb"\\u[dD][89abAB][0-9a-fA-F]{2}"
_LOW = rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
# A surrogate escape (a pair taken whole), starting a run of backslashes and preceded by an even
# number of them: "\\\\ud83d" is an escaped backslash and then plain text, no escape at all.
_SURROGATE = re.compile(rb"(?<!\\)(?:\\\\)*+(?:%s%s|(?P<lone>%s|%s))" % (_HIGH, _LOW, _HIGH, _LOW))


def lone_surrogate(body: bytes) -> re.Match[bytes] | None:
    """The first \\uXXXX escape of a UTF-16 surrogate without its partner (group "lone")."""
    return next((m for m in _SURROGATE.finditer(body) if m["lone"] is not None), None)


# msgspec and the json module give up at ~1,000 levels (the interpreter's recursion limit, less
# the caller's stack), so where exactly depends on who decodes; every body deeper than this
# fixed bound is refused before any decoder sees it. No body of these APIs nests past a few.
MAX_DEPTH = 64
TOO_DEEP = f"request body: arrays or objects are nested more than {MAX_DEPTH} levels deep"
# Every pattern here is linear: possessive, each byte read by one way only. The earlier
# '"(?:[^"\\]|\\.)*"' retried from every escaped quote of an unterminated string, each time to
# the end of the body: a 32 KiB body held the event loop for seconds.
_CLOSED_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
# From the start: text outside strings and closed strings; it stops at an unterminated string.
_UNTIL_UNTERMINATED = re.compile(rb'(?:[^"]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)
# Brackets become steps of +1 (opening) and -1 (closing, 0xff as a signed byte); all else goes.
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def unterminated_string_at(body: bytes) -> int:
    """Where the first string that never closes starts; len(body) if every string closes."""
    if b"\\" not in body:  # no escapes: quotes pair up, and an odd one out is the last
        return body.rfind(b'"') if body.count(b'"') % 2 else len(body)
    match = _UNTIL_UNTERMINATED.match(body)
    return match.end() if match else 0


def nests_deeper_than(body: bytes, depth: int) -> bool:
    """Whether `body`'s arrays and objects nest more than `depth` levels (strings skipped).

    Where a decoder gives up depends on how deep the caller's stack already is, so two callers
    can disagree about one body; a fixed bound well below that lets them agree. Linear in the
    body's size, all of it in C: this runs on the event loop, twice a request. A string that
    never closes is not JSON; its brackets are counted, as the decoder refuses it anyway.
    """
    if body.count(b"[") + body.count(b"{") <= depth:  # the common case
        return False
    end = unterminated_string_at(body)
    outside = _CLOSED_STRING.sub(b"", body[:end] if end < len(body) else body)
    steps = outside.translate(_STEPS, _NOT_BRACKETS)
    if end < len(body):
        steps += body[end:].translate(_STEPS, _NOT_BRACKETS)
    # The running level, summed in C; `filter` stops at the first one past `depth`.
    levels = itertools.accumulate(memoryview(steps).cast("b"))
    return next(filter(depth.__lt__, levels), None) is not None


def received_body(request: Request[Any, Any, Any]) -> bytes | None:
    """The body as already read for this request (None if it was never read)."""
    body: bytes | None = value_or_default(ScopeState.from_scope(request.scope).body, None)
    return body


def invalid_json_message(detail: str, body: bytes | None) -> str:
    if body is not None and (match := lone_surrogate(body)):
        escape = match["lone"].decode()
        return (
            f"invalid JSON in request body: {escape} at byte {match.start('lone')} is an unpaired "
            "UTF-16 surrogate escape, which encodes no character; send the text as UTF-8 or "
            "as a complete surrogate pair"
        )
    if body is not None and not body.strip():
        return "invalid JSON in request body: the body is empty"
    if "truncated" in detail.lower():
        return "invalid JSON in request body: it ends before the JSON value is complete"
    return f"invalid JSON in request body: {detail}"
