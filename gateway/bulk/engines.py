"""Where a bulk job's vectors come from: the gateway's engine in this process, or a server.

Both take a list of inputs (texts, or image data URLs) and give a float32 matrix; both are
called from worker threads, several batches at once, so the model's batcher stays busy.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol

import numpy as np

from gateway.client import Remote
from gateway.settings import Settings


class Engine(Protocol):
    def embed(self, inputs: list[str]) -> np.ndarray: ...

    def close(self) -> None: ...


class LocalEngine:
    """The same service the HTTP API calls, on an event loop in a background thread."""

    def __init__(self, settings: Settings, model: str, *, truncate: bool = True) -> None:
        from gateway.core import Gateway

        self.model = model
        self.truncate = truncate
        self.gateway = Gateway.build(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bulk-loop", daemon=True)
        self.thread.start()

    def embed(self, inputs: list[str]) -> np.ndarray:
        from gateway.services import EmbedRequest

        request = EmbedRequest(model=self.model, inputs=inputs, truncate=self.truncate)
        result = asyncio.run_coroutine_threadsafe(
            self.gateway.services.embedding.embed(request), self.loop
        ).result()
        return np.asarray(result.vectors, dtype=np.float32)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class RemoteEngine:
    """POST /api/embed on a running gateway (or anything speaking Ollama's embed API)."""

    def __init__(self, url: str, api_key: str | None, model: str, *, truncate: bool = True):
        self.remote = Remote(url, api_key)
        self.model = model
        self.truncate = truncate

    def embed(self, inputs: list[str]) -> np.ndarray:
        body = {"model": self.model, "input": inputs, "truncate": self.truncate}
        answer = self.remote.fields(
            self.remote.post("/api/embed", body), "/api/embed", "embeddings"
        )
        return np.asarray(answer["embeddings"], dtype=np.float32)

    def close(self) -> None:
        return None
