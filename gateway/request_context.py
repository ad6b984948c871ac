"""The request being served, as a context variable: its ID for log lines, its model for metrics.

The ASGI middleware (gateway/api/observe.py) opens a context per HTTP request; code anywhere
below it reads the ID or names the model it resolved, without a parameter threaded through.
The context object is shared, not copied, by tasks and threads started inside the request, so
a model named in a worker thread still reaches the request's metrics.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass

NO_REQUEST = "-"


@dataclass
class RequestContext:
    request_id: str
    model: str = ""  # the registry name the request resolved to, once known


_current: ContextVar[RequestContext | None] = ContextVar("gateway_request", default=None)


def begin(request_id: str) -> tuple[RequestContext, Token[RequestContext | None]]:
    context = RequestContext(request_id)
    return context, _current.set(context)


def end(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def current_request_id() -> str:
    context = _current.get()
    return NO_REQUEST if context is None else context.request_id


def note_model(name: str) -> None:
    """Record the model the current request named (a no-op outside requests). The first one
    wins: an image request that also runs its space's text model is the image model's."""
    context = _current.get()
    if context is not None and not context.model:
        context.model = name
