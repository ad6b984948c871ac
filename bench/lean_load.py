"""The same closed-loop load as `bench.load`, from a client that costs the machine little.

On these 2 cores the load generator shares the CPU with the server it measures, and aiohttp
costs ~0.6 ms of CPU per request (notes of issue 13): at 64 clients with one text each that is
a quarter of a core the server cannot use, and at one client it adds ~2 ms to every round trip.
This client is an asyncio Protocol per connection on uvloop (the server's own event loop): it
writes prebuilt HTTP/1.1 requests on keep-alive connections, reads `Content-Length` bodies, and
decodes the answers into vectors only after the clock stops, so the figures measure the server
and the loopback, not a client library's parsing. Vectors are still checked afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit

import numpy as np
import uvloop

from bench.load import Api, LoadError, LoadResult

_HEAD_END = b"\r\n\r\n"


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight, answered with a Content-Length body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(_HEAD_END)
        if end < 0:
            return
        head = bytes(self.buffer[:end]).split(b"\r\n")
        length = None
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            waiter.set_exception(LoadError(f"answer without Content-Length: {head[0]!r}"))
            return
        start = end + len(_HEAD_END)
        if len(self.buffer) < start + length:
            return
        status = int(head[0].split(b" ", 2)[1])
        body = bytes(self.buffer[start : start + length])
        del self.buffer[: start + length]
        waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"server closed the connection: {exc}"))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def _request(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _run(
    url: str, api: Api, model: str, texts: Sequence[str], clients: int, per_request: int
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    starts = range(0, len(texts), per_request)
    # Built before the clock starts: the body is the client's data, not its per-request work.
    requests = [
        _request(parts.netloc, api.path, api.body(model, texts[s : s + per_request]))
        for s in starts
    ]
    answers: list[bytes] = [b""] * len(requests)
    latencies: list[float] = []
    pending = iter(range(len(requests)))
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(_Connection, host, port))[1]
        for _ in range(min(clients, len(requests)))
    ]

    async def worker(connection: _Connection) -> None:
        for index in pending:  # nothing awaits between next() calls: safe to share
            sent = time.perf_counter()
            status, raw = await connection.send(requests[index])
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                raise LoadError(f"{api.path} answered {status}: {raw[:500]!r}")
            answers[index] = raw

    try:
        began = time.perf_counter()
        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
                for connection in connections:
                    group.create_task(worker(connection))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        wall = time.perf_counter() - began
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
    decoded = [api.decode(raw) for raw in answers]
    vectors = np.concatenate([rows for rows, _ in decoded])
    tokens = sum(count for _, count in decoded)
    return LoadResult(wall, latencies, vectors, tokens, len(requests))


def run_lean_load(
    url: str, api: Api, model: str, texts: Sequence[str], *, clients: int, per_request: int
) -> LoadResult:
    """`bench.load.run_load`'s contract, from the lean client (answers decoded afterwards)."""
    return uvloop.run(_run(url, api, model, texts, clients, per_request))
