"""Images through the real server: every route, every client, against independent references.

One registry: the tiny random NomicBert as `nomic-embed-text`, a 768-wide random CLIP vision
tower as `nomic-embed-vision` (its `text_model` is nomic-embed-text, as in registry.yaml), and
EfficientNet-Lite0 with real ImageNet weights as an image-only model. Two servers run it:
`gateway` opens 127.0.0.1 to image URLs (GATEWAY_IMAGE_ALLOW_HOSTS, as an operator opens an
internal image store) with short fetch limits; `guarded` keeps the default policy (public
addresses only) and must refuse every private destination without contacting it.

References: transformers' CLIPImageProcessor + CLIPVisionModel on the same weights for the
vision tower (the decoding rules' expected RGB come from tests/support/vision_cases.py);
the PyTorch nomic recipe with the `search_query: ` prefix for texts sent to the vision model;
transformers' processor + the PyTorch EfficientNet for the real-weights model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.image_api import clip_vision_768, efficientnet_entry, vision_entry
from tests.support.image_gateway import (
    EFFNET,
    FETCH_TIMEOUT,
    MAX_BYTES,
    MAX_IMAGES,
    MEASURED,
    NOTES,
    SERVED_JPEG,
    SERVED_PNG,
    VISION,
)
from tests.support.image_server import ImageServer
from tests.support.models import NO_CACHE, NOMIC
from tests.support.reference import NomicReference
from tests.support.vision_cases import CASES
from tools.gateway_server import GatewayServer
from tools.models import nomic_entry, write_registry
from tools.vision import ClipReference, efficientnet_lite0


@pytest.fixture(scope="package", autouse=True)
def print_measured() -> Iterator[None]:
    yield
    if MEASURED:
        print("\nimage parity through the server: 1 - cosine with transformers, worst over routes")
        for case in CASES:
            seen = [table[case.name] for table in MEASURED.values() if case.name in table]
            print(f"  {case.name:26} {1 - min(seen):.1e}  ({len(seen)} routes and widths)")
        worst = {route: 1 - min(table.values()) for route, table in MEASURED.items()}
        print("  by route: " + ", ".join(f"{r} {v:.1e}" for r, v in sorted(worst.items())))
    for note in NOTES:
        print(note)


@pytest.fixture(scope="package")
def vision_dir() -> Path:
    return clip_vision_768()


@pytest.fixture(scope="package")
def registry(tmp_path_factory: pytest.TempPathFactory, nomic_dir: Path, vision_dir: Path) -> Path:
    models = {
        NOMIC: nomic_entry(nomic_dir),
        VISION: vision_entry(vision_dir),
        EFFNET: efficientnet_entry(efficientnet_lite0()),
    }
    path = tmp_path_factory.mktemp("images") / "registry.yaml"
    return write_registry(path, models, default_model=NOMIC, default_image_model=VISION)


@pytest.fixture(scope="package")
def gateway(registry: Path) -> Iterator[GatewayServer]:
    """127.0.0.1 opened to image URLs; tight byte, time and count limits."""
    env = {
        **NO_CACHE,
        "GATEWAY_IMAGE_ALLOW_HOSTS": "127.0.0.1",
        "GATEWAY_MAX_IMAGES": str(MAX_IMAGES),
        "GATEWAY_IMAGE_MAX_BYTES": str(MAX_BYTES),
        "GATEWAY_IMAGE_FETCH_TIMEOUT": str(FETCH_TIMEOUT),
        "GATEWAY_IMAGE_CONNECT_TIMEOUT": str(FETCH_TIMEOUT),
    }
    with GatewayServer(registry=registry, env=env) as running:
        yield running


@pytest.fixture(scope="package")
def guarded(registry: Path) -> Iterator[GatewayServer]:
    """The default fetch policy: public addresses only."""
    with GatewayServer(registry=registry, env=NO_CACHE) as running:
        yield running


@pytest.fixture(scope="package")
def images() -> Iterator[ImageServer]:
    with ImageServer(SERVED_PNG.data, SERVED_JPEG.data) as running:
        yield running


@pytest.fixture(scope="package")
def elsewhere() -> Iterator[ImageServer]:
    """A second image server at 127.0.0.2: loopback, and not in the allow-list."""
    with ImageServer(SERVED_PNG.data, SERVED_JPEG.data, host="127.0.0.2") as running:
        yield running


@pytest.fixture(scope="package")
def expected(vision_dir: Path) -> dict[str, np.ndarray]:
    """case name -> the transformers reference vector (768, unit length)."""
    vectors = ClipReference(vision_dir).embed([case.reference for case in CASES])
    return {case.name: vector for case, vector in zip(CASES, vectors, strict=True)}


@pytest.fixture(scope="package")
def nomic_reference(nomic_dir: Path) -> NomicReference:
    return NomicReference(nomic_dir / "torch", nomic_dir / "tokenizer.json", max_tokens=512)
