"""Closed-loop HTTP load: N concurrent clients (aiohttp, asyncio), each sending k texts a request.

aiohttp rather than httpx: on these 2 cores, 64 httpx clients top out near 300 requests/s even
against an endpoint that does nothing (aiohttp: ~12,000), so with httpx the client, sharing the
cores with the server, would be what the 64-client figures measure.

The texts are cut in order into requests of `per_request` texts; `clients` workers each take the
next request as soon as their previous answer has arrived (a closed loop, like real clients that
wait for their embeddings). Every answer is decoded into vectors, so the client pays for parsing
as real clients do, and the bench can check the vectors.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import msgspec
import numpy as np


class _OllamaOut(msgspec.Struct):
    embeddings: list[list[float]]
    prompt_eval_count: int = 0


class _OpenAIItem(msgspec.Struct):
    embedding: list[float] | str
    index: int = 0


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0


class _OpenAIOut(msgspec.Struct):
    data: list[_OpenAIItem]
    usage: _Usage | None = None


@dataclass(frozen=True)
class Api:
    """One wire format: where to POST and how to read the answer."""

    label: str
    path: str
    openai: bool = False
    base64: bool = False

    def body(self, model: str, texts: Sequence[str]) -> bytes:
        payload: dict[str, object] = {"model": model, "input": list(texts)}
        if self.openai:
            payload["encoding_format"] = "base64" if self.base64 else "float"
        return msgspec.json.encode(payload)

    def decode(self, raw: bytes) -> tuple[np.ndarray, int]:
        """(vectors [n, dim] float32, tokens the server says it embedded)."""
        if not self.openai:
            out = msgspec.json.decode(raw, type=_OllamaOut)
            return np.asarray(out.embeddings, dtype=np.float32), out.prompt_eval_count
        answer = msgspec.json.decode(raw, type=_OpenAIOut)
        items = sorted(answer.data, key=lambda item: item.index)
        rows = [
            np.frombuffer(base64.b64decode(item.embedding), dtype="<f4")
            if isinstance(item.embedding, str)
            else np.asarray(item.embedding, dtype=np.float32)
            for item in items
        ]
        return np.stack(rows), answer.usage.prompt_tokens if answer.usage else 0


OLLAMA = Api("/api/embed", "/api/embed")
OPENAI_BASE64 = Api("/v1/embeddings base64", "/v1/embeddings", openai=True, base64=True)
INFINITY_FLOAT = Api("/embeddings float", "/embeddings", openai=True)


@dataclass
class LoadResult:
    wall_s: float
    latencies_s: list[float]
    vectors: np.ndarray
    server_tokens: int
    requests: int


class LoadError(RuntimeError):
    pass


async def _run(
    url: str, api: Api, model: str, texts: Sequence[str], clients: int, per_request: int
) -> LoadResult:
    starts = list(range(0, len(texts), per_request))
    pending = iter(enumerate(starts))
    vectors: list[np.ndarray | None] = [None] * len(starts)
    latencies: list[float] = []
    tokens = 0
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=600)

    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:

        async def worker() -> None:
            nonlocal tokens
            # Taking from a shared iterator is safe: nothing awaits between next() calls.
            for index, start in pending:
                body = api.body(model, texts[start : start + per_request])
                sent = time.perf_counter()
                async with client.post(api.path, data=body, headers=headers) as response:
                    raw = await response.read()
                if response.status != 200:
                    raise LoadError(f"{api.path} answered {response.status}: {raw[:500]!r}")
                rows, count = api.decode(raw)
                latencies.append(time.perf_counter() - sent)
                vectors[index] = rows
                tokens += count

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(clients, len(starts)))))
        wall = time.perf_counter() - began
    return LoadResult(wall, latencies, np.concatenate(vectors), tokens, len(starts))  # type: ignore[arg-type]


def run_load(
    url: str, api: Api, model: str, texts: Sequence[str], *, clients: int, per_request: int
) -> LoadResult:
    """Send all `texts` and wait for every answer; vectors come back in input order."""
    return asyncio.run(_run(url, api, model, texts, clients, per_request))
