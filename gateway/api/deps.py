"""Dependency providers: how a Router hands its handlers the services they need."""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import Request
from litestar.di import Provide

T = TypeVar("T")
# What a handler asks for to read its connection (for disconnects); the user, auth and state
# types are not used.
AnyRequest = Request[Any, Any, Any]


def provide(value: T) -> Provide:
    """A provider of one object, built once with the app.

    A closure rather than `state: State`: asking for State makes Litestar copy it per request.
    """

    def get() -> T:
        return value

    return Provide(get, sync_to_thread=False, use_cache=True)
