"""Helpers of bench/faults.py: reading answers, breaking files, leftovers, a slow hub."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tools.hf_server import LocalHub


def answer(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:160]
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return f"{response.status_code} {message}"
    return f"{response.status_code}"


def leftovers(folder: Path) -> list[str]:
    """Temporary download files anywhere under `folder`."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith(".partial") or p.name.startswith(".hf-download-")
    )


def copy_model(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copyfile(source / name, target / name)
    return target


def breaker(how: str) -> Callable[[Path], None]:
    if how == "deleted":
        return lambda path: path.unlink()

    def truncate(path: Path) -> None:
        with path.open("r+b") as handle:
            handle.truncate(path.stat().st_size // 2)

    return truncate


@contextlib.contextmanager
def throttled(hub: LocalHub, bytes_per_second: int) -> Iterator[None]:
    """Slow the hub's CDN (where LFS files come from) so a pull can be killed halfway."""
    handler = hub._cdn.RequestHandlerClass
    chunk = max(1, bytes_per_second // 20)

    class Slow(handler):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            super().setup()
            raw = self.wfile

            class Writer:
                def write(self, data: bytes) -> int:
                    for start in range(0, len(data), chunk):
                        raw.write(data[start : start + chunk])
                        time.sleep(0.05)
                    return len(data)

                def flush(self) -> None:
                    raw.flush()

                @property
                def closed(self) -> bool:
                    return bool(raw.closed)

                def close(self) -> None:
                    raw.close()

            self.wfile = Writer()  # type: ignore[assignment]

    hub._cdn.RequestHandlerClass = Slow
    try:
        yield
    finally:
        hub._cdn.RequestHandlerClass = handler
