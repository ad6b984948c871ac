"""What the image API tests (tests/api/images/) share: the served names and limits of their
gateway (tests/api/images/conftest.py), the cosines they record for the end-of-package
summary, the calls they make on the native routes, and the broken images they send."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import openai

from tests.support.bad_images import many_scans_jpeg, png_header, real_bomb
from tests.support.reference import cosines
from tests.support.vision_cases import CASES
from tools.gateway_server import GatewayServer
from tools.vision import encode, photo_like

VISION = "nomic-embed-vision"
EFFNET = "efficientnet-lite0"
MIN_COSINE = 0.9999
TEXT_MIN_COSINE = 0.99999
MiB = 1024 * 1024
MAX_IMAGES = 24
MAX_BYTES = 4 * MiB
# Long enough that a loopback fetch on a busy machine never reaches it by accident; the slow
# image server's bodies (30 s, 60 s) outlast it by far.
FETCH_TIMEOUT = 5.0
BY_NAME = {case.name: case for case in CASES}
SERVED_PNG = BY_NAME["png-wide"]  # what the image server's /img.png answers
SERVED_JPEG = BY_NAME["jpeg-tall"]  # and /img.jpg
TEXTS = [
    "a photo of a red fox in the snow",
    "diagram of a jet engine",
    "search engines rank documents",
    "Zürich bei Nacht ☕",
]
# route -> case -> cosine with the transformers reference, printed at the end of the package.
MEASURED: dict[str, dict[str, float]] = {}
NOTES: list[str] = []


def sdk(server: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def sliced(vectors: np.ndarray, width: int) -> np.ndarray:
    """A Matryoshka slice, renormalized."""
    cut = np.atleast_2d(vectors)[:, :width].astype(np.float64)
    return cut / np.linalg.norm(cut, axis=1, keepdims=True)


def check_images(
    served: np.ndarray,
    names: Sequence[str],
    expected: dict[str, np.ndarray],
    route: str,
    width: int = 768,
) -> None:
    """Each served row against the reference for its case; records the cosines."""
    want = np.stack([sliced(expected[name], width)[0] for name in names])
    assert served.shape == want.shape, (route, served.shape, want.shape)
    sims = cosines(served, want)
    for name, sim in zip(names, sims, strict=True):
        table = MEASURED.setdefault(route, {})
        table[name] = min(table.get(name, 1.0), float(sim))
    worst = int(sims.argmin())
    assert sims.min() >= MIN_COSINE, f"{route}: {names[worst]}: cosine {sims[worst]:.8f}"
    assert np.abs(np.linalg.norm(served, axis=1) - 1).max() < 1e-5, f"{route}: not unit length"


def img_embed(client: httpx.Client, content: str, **fields: Any) -> np.ndarray:
    response = client.post("/img/embed", json={"content": content, **fields})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"embedding", "time_ms"}, body
    return np.asarray(body["embedding"], np.float32)


def img_batch(client: httpx.Client, contents: Sequence[str], **fields: Any) -> np.ndarray:
    response = client.post("/img/batch", json={"contents": list(contents), **fields})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"embeddings", "time_ms"}, body
    return np.asarray(body["embeddings"], np.float32).reshape(len(contents), -1)


def tiny_png(seed: int) -> bytes:
    return encode(photo_like(seed, 12, 10), "PNG")


BAD_NAMES = [
    "bomb-8000x8000",
    "bomb-header-100000x100000",
    "truncated-jpeg",
    "random-bytes",
    "zero-by-zero",
    "jpeg-many-scans",
]


@functools.cache
def bad_images() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, what the error says); built on first use (the bomb takes a moment)."""
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    return {
        "bomb-8000x8000": (real_bomb(), "8000x8000 = 64000000 pixels, more than the 50000000"),
        "bomb-header-100000x100000": (
            png_header(100_000, 100_000),
            "100000x100000 = 10000000000 pixels, more than the 50000000",
        ),
        "truncated-jpeg": (SERVED_JPEG.data[: len(SERVED_JPEG.data) * 2 // 3], "truncated"),
        "random-bytes": (noise, "not a supported image"),
        "zero-by-zero": (png_header(0, 0), "no pixels (0x0)"),
        # 16 KB that libjpeg would spend seconds on (scans x pixels), for nothing but CPU.
        "jpeg-many-scans": (many_scans_jpeg(1000, 1000, 2000), "more than the 100 scans"),
    }
