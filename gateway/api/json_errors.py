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


# msgspec and the json module give up past ~1,000 levels (the interpreter's recursion limit).
TOO_DEEP = "invalid JSON in request body: arrays or objects are nested too deeply"


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
