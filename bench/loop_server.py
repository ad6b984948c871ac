"""An Ollama-style embedding server: every input of every request runs alone, one after another.

That is how Ollama serves embeddings (one sequence per runner call, requests queued in turn), on
the same ONNX session settings as the gateway, so the difference to the gateway is what dynamic
batching buys. It speaks Ollama's `/api/embed` (`{"model", "input"}` -> `{"embeddings"}`).

Run: `python -m bench.loop_server --onnx M --tokenizer T --name NAME --port P`. A bare ASGI app on
uvicorn with the gateway's uvicorn settings, and msgspec for JSON, so the HTTP layer costs no
more than the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from bench.embedders import OrtEmbedder


class EmbedBody(msgspec.Struct):
    model: str
    input: str | list[str]


class EmbedResponse(msgspec.Struct):
    model: str
    embeddings: list[list[float]]
    prompt_eval_count: int


class LoopApp:
    def __init__(self, embedder: OrtEmbedder, name: str) -> None:
        self.embedder = embedder
        self.name = name
        # One thread: inputs from all requests run strictly one at a time, in arrival order.
        self.executor = ThreadPoolExecutor(max_workers=1)

    def _embed_one(self, text: str) -> tuple[list[float], int]:
        (row,) = self.embedder.tokenize([text])
        return self.embedder.run([row])[0].tolist(), len(row)

    async def _embed(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = msgspec.json.decode(body, type=EmbedBody)
        except msgspec.ValidationError as exc:
            return 400, msgspec.json.encode({"error": str(exc)})
        if request.model != self.name:
            return 404, msgspec.json.encode({"error": f"model '{request.model}' not found"})
        texts = [request.input] if isinstance(request.input, str) else request.input
        loop = asyncio.get_running_loop()
        vectors: list[list[float]] = []
        tokens = 0
        for text in texts:
            vector, count = await loop.run_in_executor(self.executor, self._embed_one, text)
            vectors.append(vector)
            tokens += count
        response = EmbedResponse(self.name, vectors, tokens)
        return 200, msgspec.json.encode(response)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            self.executor.shutdown(wait=False)
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and scope["path"] == "/api/embed":
            status, payload = await self._embed(body)
        elif scope["method"] == "GET" and scope["path"] == "/":
            status, payload = 200, b"Ollama is running"
        else:
            status, payload = 404, b'{"error":"not found"}'
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import uvicorn

    app = LoopApp(OrtEmbedder(args.onnx, args.tokenizer), args.name)
    # The gateway's uvicorn settings (gateway/cli.py), so both pay the same HTTP stack.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
