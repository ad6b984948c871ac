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

import functools
import io
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import ollama
import openai
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from tests.support.api import assert_ollama_error, assert_openai_error, ollama_embed, openai_embed
from tests.support.bad_images import many_scans_jpeg, png_header, real_bomb
from tests.support.color_reference import seed_reference
from tests.support.image_api import (
    VISION_DIMENSIONS,
    clip_vision_768,
    data_url,
    efficientnet_entry,
    raw_base64,
    vision_entry,
)
from tests.support.image_server import CHUNK, DECLARED_PAUSE, ENDLESS_LIMIT, ImageServer
from tests.support.models import NO_CACHE, NOMIC
from tests.support.reference import NOMIC_PREFIXES, NomicReference, cosines
from tests.support.vision_cases import CASES
from tools.gateway_server import GatewayServer
from tools.models import nomic_entry, write_registry
from tools.vision import (
    ClipReference,
    edited_copy,
    efficientnet_lite0,
    efficientnet_module,
    encode,
    photo_like,
    scene,
)

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
# route -> case -> cosine with the transformers reference, printed at the end of the module.
MEASURED: dict[str, dict[str, float]] = {}
NOTES: list[str] = []


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
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


@pytest.fixture(scope="module")
def vision_dir() -> Path:
    return clip_vision_768()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, nomic_dir: Path, vision_dir: Path) -> Path:
    models = {
        NOMIC: nomic_entry(nomic_dir),
        VISION: vision_entry(vision_dir),
        EFFNET: efficientnet_entry(efficientnet_lite0()),
    }
    path = tmp_path_factory.mktemp("images") / "registry.yaml"
    return write_registry(path, models, default_model=NOMIC, default_image_model=VISION)


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def guarded(registry: Path) -> Iterator[GatewayServer]:
    """The default fetch policy: public addresses only."""
    with GatewayServer(registry=registry, env=NO_CACHE) as running:
        yield running


@pytest.fixture(scope="module")
def images() -> Iterator[ImageServer]:
    with ImageServer(SERVED_PNG.data, SERVED_JPEG.data) as running:
        yield running


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[ImageServer]:
    """A second image server at 127.0.0.2: loopback, and not in the allow-list."""
    with ImageServer(SERVED_PNG.data, SERVED_JPEG.data, host="127.0.0.2") as running:
        yield running


@pytest.fixture(scope="module")
def expected(vision_dir: Path) -> dict[str, np.ndarray]:
    """case name -> the transformers reference vector (768, unit length)."""
    vectors = ClipReference(vision_dir).embed([case.reference for case in CASES])
    return {case.name: vector for case, vector in zip(CASES, vectors, strict=True)}


@pytest.fixture(scope="module")
def nomic_reference(nomic_dir: Path) -> NomicReference:
    return NomicReference(nomic_dir / "torch", nomic_dir / "tokenizer.json", max_tokens=512)


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


# -- parity with transformers, on every route --------------------------------------------------


def test_reference_tells_images_apart(expected: dict[str, np.ndarray]) -> None:
    """The 0.9999 bound means something only if different pictures are far apart."""
    vectors = np.stack(list(expected.values()))
    similarity = vectors @ vectors.T
    off_diagonal = similarity[~np.eye(len(vectors), dtype=bool)]
    NOTES.append(
        f"reference: most similar pair of different cases, cosine {off_diagonal.max():.4f}"
    )
    assert off_diagonal.max() < 0.95


def test_openai_sdk_data_urls(gateway: GatewayServer, expected: dict[str, np.ndarray]) -> None:
    """The SDK asks for base64 by default and decodes it; every image kind in one request."""
    response = sdk(gateway).embeddings.create(
        model=VISION, input=[data_url(case.data) for case in CASES]
    )
    assert [item.index for item in response.data] == list(range(len(CASES)))
    assert response.model == VISION
    vectors = np.asarray([item.embedding for item in response.data], np.float32)
    check_images(vectors, [case.name for case in CASES], expected, "/v1 sdk")


def test_openai_float_jina_objects(gateway: GatewayServer, expected: dict[str, np.ndarray]) -> None:
    """`{"image": raw base64}` objects, float encoding, raw HTTP."""
    with gateway.client() as client:
        objects = [{"image": raw_base64(case.data)} for case in CASES]
        vectors = openai_embed(client, VISION, cast(Any, objects))
    check_images(vectors, [case.name for case in CASES], expected, "/v1 objects")


def test_ollama_client_data_urls(gateway: GatewayServer, expected: dict[str, np.ndarray]) -> None:
    response = ollama.Client(host=gateway.url).embed(
        model=VISION, input=[data_url(case.data) for case in CASES]
    )
    vectors = np.asarray(response.embeddings, np.float32)
    check_images(vectors, [case.name for case in CASES], expected, "/api/embed")
    assert response.model == VISION


def test_ollama_client_mixed_strings(
    gateway: GatewayServer, images: ImageServer, expected: dict[str, np.ndarray]
) -> None:
    """Bare strings to an image model: URLs and data URLs are images, the rest is text."""
    gif = BY_NAME["gif-first-frame"]
    inputs = [TEXTS[2], images.url("/img.png"), TEXTS[3], data_url(gif.data)]
    response = ollama.Client(host=gateway.url).embed(model=VISION, input=inputs)
    rows = np.asarray(response.embeddings, np.float32)
    check_images(rows[[1, 3]], [SERVED_PNG.name, gif.name], expected, "/api/embed mixed")
    with gateway.client() as client:
        texts = ollama_embed(client, f"{NOMIC}:query", [TEXTS[2], TEXTS[3]])
    np.testing.assert_allclose(rows[[0, 2]], texts, atol=1e-5)
    assert response.prompt_eval_count is not None and response.prompt_eval_count > 0


def test_legacy_ollama_route_embeds_one_image(
    gateway: GatewayServer, expected: dict[str, np.ndarray]
) -> None:
    """/api/embeddings returns the vector before L2 normalization, as Ollama does."""
    case = BY_NAME["jpeg-exif-6"]
    with gateway.client() as client:
        response = client.post(
            "/api/embeddings", json={"model": VISION, "prompt": data_url(case.data)}
        )
    assert response.status_code == 200, response.text
    raw = np.asarray([response.json()["embedding"]], np.float32)
    assert abs(float(np.linalg.norm(raw)) - 1) > 0.01  # not normalized
    check_images(raw / np.linalg.norm(raw), [case.name], expected, "/api/embeddings")


def test_native_routes(gateway: GatewayServer, expected: dict[str, np.ndarray]) -> None:
    """/img/embed with raw base64 (one image per call), /img/batch with data URLs."""
    names = [case.name for case in CASES]
    with gateway.client() as client:
        singles = np.stack([img_embed(client, raw_base64(case.data)) for case in CASES])
        batch = img_batch(client, [data_url(case.data) for case in CASES])
    check_images(singles, names, expected, "/img/embed")
    check_images(batch, names, expected, "/img/batch")
    # The same pictures alone and in one batch of 16: batch invariance through the server.
    assert np.abs(singles - batch).max() <= 1e-5


def test_native_image_routes_serve_the_model_named_or_refuse_it(gateway: GatewayServer) -> None:
    """`model` (the gateway's extension, as on TEI's routes) was ignored: an unknown name got
    the default image model's vector with a 200."""
    image = data_url(tiny_png(10))
    with gateway.client() as client:
        for path, body in (
            ("/img/embed", {"content": image}),
            ("/img/batch", {"contents": [image]}),
        ):
            unknown = client.post(path, json={**body, "model": "no-such-model"})
            assert_ollama_error(unknown, 404, "model 'no-such-model' not found")
            text_only = client.post(path, json={**body, "model": NOMIC})
            assert_ollama_error(text_only, 400, "is an image", "embeds text only", VISION)
        assert img_embed(client, image, model=EFFNET).shape == (1280,)  # not the default's 768
        assert img_batch(client, [image, image], model=EFFNET).shape == (2, 1280)
        np.testing.assert_array_equal(
            img_embed(client, image, model=VISION), img_embed(client, image)
        )


URL_PATHS = [
    ("/img.png", SERVED_PNG.name),
    ("/img.jpg", SERVED_JPEG.name),
    ("/octet.png", SERVED_PNG.name),  # application/octet-stream, as object stores send
    ("/untyped.png", SERVED_PNG.name),  # no Content-Type at all
    ("/hop/3", SERVED_PNG.name),  # three redirects: the default limit
]


def test_urls_on_every_route(
    gateway: GatewayServer, images: ImageServer, expected: dict[str, np.ndarray]
) -> None:
    urls = [images.url(path) for path, _ in URL_PATHS]
    names = [name for _, name in URL_PATHS]
    before = len(images.requests)
    with gateway.client() as client:
        together = openai_embed(client, VISION, urls)
        ollama_rows = ollama_embed(client, VISION, urls)
        singles = np.stack([img_embed(client, url) for url in urls])
        batch = img_batch(client, urls)
    for route, vectors in (
        ("/v1 url", together),
        ("/api/embed url", ollama_rows),
        ("/img/embed url", singles),
        ("/img/batch url", batch),
    ):
        check_images(vectors, names, expected, route)
    # Every route followed the chain to its end: /hop/3 .. /hop/0 for each URL list.
    assert images.requests[before:].count("/hop/0") == 4


# -- mixed lists and the cross-modal contract ----------------------------------------------------


def test_mixed_list_answers_in_input_order(
    gateway: GatewayServer,
    images: ImageServer,
    expected: dict[str, np.ndarray],
    nomic_reference: NomicReference,
) -> None:
    rgba, gif = BY_NAME["png-rgba"], BY_NAME["gif-first-frame"]
    mixed: list[Any] = [
        images.url("/img.jpg"),
        {"text": TEXTS[0]},
        {"image": raw_base64(rgba.data)},
        TEXTS[1],
        data_url(gif.data),
    ]
    image_at, text_at = [0, 2, 4], [1, 3]
    names = [SERVED_JPEG.name, rgba.name, gif.name]
    query = nomic_reference.embed(TEXTS[:2], NOMIC_PREFIXES["query"], dims=[768, 256])
    full = np.zeros(0)
    for width in (768, 256):
        extra = {} if width == 768 else {"dimensions": width}
        response = sdk(gateway).embeddings.create(model=VISION, input=mixed, **extra)
        rows = np.asarray([item.embedding for item in response.data], np.float32)
        assert [item.index for item in response.data] == [0, 1, 2, 3, 4]
        assert rows.shape == (5, width)
        assert response.usage.prompt_tokens > 0  # the texts' tokens; images count none
        with gateway.client() as client:
            texts = openai_embed(client, NOMIC, TEXTS[:2], input_type="query", **extra)
            alone = openai_embed(client, VISION, [mixed[i] for i in image_at], **extra)
        np.testing.assert_allclose(rows[text_at], texts, atol=1e-5)
        np.testing.assert_allclose(rows[image_at], alone, atol=1e-5)
        check_images(rows[image_at], names, expected, f"/v1 mixed {width}", width=width)
        sims = cosines(rows[text_at], query[width])
        assert sims.min() >= TEXT_MIN_COSINE, sims
        full = rows if width == 768 else full
    reverse = sdk(gateway).embeddings.create(model=VISION, input=mixed[::-1])
    backwards = np.asarray([item.embedding for item in reverse.data], np.float32)
    np.testing.assert_allclose(backwards[::-1], full, atol=1e-5)


def test_text_sent_to_the_vision_model_is_a_nomic_query(
    gateway: GatewayServer, nomic_reference: NomicReference
) -> None:
    """Text to nomic-embed-vision = text to nomic-embed-text with the query task = the PyTorch
    recipe with `search_query: `, so text and image vectors compare directly."""
    reference = nomic_reference.embed(TEXTS, NOMIC_PREFIXES["query"], dims=[768])[768]
    with gateway.client() as client:
        served = {
            "vision /v1": openai_embed(client, VISION, TEXTS),
            "vision /api/embed": ollama_embed(client, VISION, TEXTS),
            "vision {text} objects": openai_embed(
                client, VISION, cast(Any, [{"text": t} for t in TEXTS])
            ),
            "text input_type=query": openai_embed(client, NOMIC, TEXTS, input_type="query"),
            "text nomic-embed-text:query": ollama_embed(client, f"{NOMIC}:query", TEXTS),
            "native /batch task=query": np.asarray(
                client.post("/batch", json={"inputs": TEXTS, "task": "query"}).json()["embeddings"],
                np.float32,
            ),
        }
        document = openai_embed(client, NOMIC, TEXTS)  # the text model's default task
    text_query = served["text input_type=query"]
    for how, vectors in served.items():
        np.testing.assert_allclose(vectors, text_query, atol=1e-5, err_msg=how)
        sims = cosines(vectors, reference)
        assert sims.min() >= TEXT_MIN_COSINE, (how, sims)
    worst = min(float(cosines(vectors, reference).min()) for vectors in served.values())
    spread = max(float(np.abs(v - text_query).max()) for v in served.values())
    NOTES.append(
        f"cross-modal: text via {VISION} (3 ways) = {NOMIC} query (3 ways): max abs diff "
        f"{spread:.1e}; vs PyTorch search_query recipe: 1 - cos <= {1 - worst:.1e}"
    )
    # The comparison can tell the query prefix from another: the document task differs.
    apart = cosines(served["vision /v1"], document)
    NOTES.append(f"cross-modal: query vs document prefix, max cosine {apart.max():.6f}")
    assert apart.max() < 0.9999


def test_a_failing_text_does_not_wait_for_the_images(
    gateway: GatewayServer, images: ImageServer
) -> None:
    """A mixed request fails as a whole on its first error: a text past the context length
    (truncate: false) is reported at once, not after the slow image fetch beside it."""
    long_text = "word " * 2000  # past the text model's 512 tokens
    body = {"model": VISION, "input": [images.url("/slow"), {"text": long_text}], "truncate": False}
    with gateway.client() as client:
        started = time.monotonic()
        response = client.post("/v1/embeddings", json=body)
        elapsed = time.monotonic() - started
        assert_openai_error(
            response, 400, "input[1]", "context length", code="context_length_exceeded"
        )
    assert elapsed < FETCH_TIMEOUT, elapsed


def test_modality_says_what_bare_strings_are(gateway: GatewayServer) -> None:
    """Infinity's `modality` field (through the SDK's extra_body): a URL-looking string as text."""
    url_text = "https://example.com/cat.png"
    response = sdk(gateway).embeddings.create(
        model=VISION, input=[url_text], extra_body={"modality": "text"}
    )
    with gateway.client() as client:
        as_query = openai_embed(client, NOMIC, [url_text], input_type="query")
        np.testing.assert_allclose(np.asarray([response.data[0].embedding]), as_query, atol=1e-5)
        refused = client.post(
            "/v1/embeddings", json={"model": VISION, "input": ["x"], "modality": "video"}
        )
        assert_openai_error(refused, 400, "modality", param="modality")


# -- dimensions ----------------------------------------------------------------------------------


def test_dimensions_on_image_models(
    gateway: GatewayServer, expected: dict[str, np.ndarray]
) -> None:
    case = BY_NAME["bmp"]
    with gateway.client() as client:
        for width in VISION_DIMENSIONS:
            rows = [
                openai_embed(client, VISION, [data_url(case.data)], dimensions=width),
                ollama_embed(client, VISION, [data_url(case.data)], dimensions=width),
                img_embed(client, raw_base64(case.data), dim=width)[None],
                img_batch(client, [raw_base64(case.data)], dim=width),
            ]
            for route, vectors in zip(
                ("/v1", "/api/embed", "/img/embed", "/img/batch"), rows, strict=True
            ):
                check_images(vectors, [case.name], expected, f"{route} dim {width}", width=width)
        # Any width from 1 to the native one: the cut-and-renormalized full vector.
        full = openai_embed(client, VISION, [data_url(case.data)])[0]
        for width in (300, 37, 1):
            want = full[:width] / np.linalg.norm(full[:width])
            for served in (
                openai_embed(client, VISION, [data_url(case.data)], dimensions=width)[0],
                ollama_embed(client, VISION, [data_url(case.data)], dimensions=width)[0],
                img_embed(client, raw_base64(case.data), dim=width),
            ):
                assert served.shape == (width,)
                np.testing.assert_allclose(served, want, atol=1e-6)
        for width in (0, 769, 12.5):
            body = {"model": VISION, "input": [data_url(case.data)], "dimensions": width}
            assert_openai_error(
                client.post("/v1/embeddings", json=body), 400, "from 1 to 768", param="dimensions"
            )
            ollama = client.post("/api/embed", json=body)
            if isinstance(width, int):  # Ollama's rule there: ignored, the full width
                assert len(ollama.json()["embeddings"][0]) == 768, ollama.text
            else:
                assert_ollama_error(ollama, 400, "from 1 to 768")
            native = client.post("/img/embed", json={"content": data_url(case.data), "dim": width})
            assert_ollama_error(native, 400, "dim must be", "from 1 to 768")
            mixed = {**body, "input": [data_url(case.data), {"text": "hi"}]}
            assert_openai_error(client.post("/v1/embeddings", json=mixed), 400, "from 1 to 768")
        full = openai_embed(client, EFFNET, [data_url(case.data)], dimensions=1280)
        assert full.shape == (1, 1280)
        body = {"model": EFFNET, "input": [data_url(case.data)], "dimensions": 1281}
        assert_openai_error(
            client.post("/v1/embeddings", json=body), 400, "from 1 to 1280", param="dimensions"
        )


# -- EfficientNet-Lite0: real weights ------------------------------------------------------------


def test_efficientnet_through_the_server(gateway: GatewayServer) -> None:
    """Parity with PyTorch on the real weights, then retrieval: each edited copy (cropped,
    shrunk, blurred, JPEG q70) finds its own original among photo-like scenes."""
    import torch
    from transformers import CLIPImageProcessorPil

    originals = [scene(100 + i, 480 + 16 * i, 360 + 8 * i) for i in range(8)]
    with gateway.client() as client:
        stored = openai_embed(client, EFFNET, [data_url(encode(im, "PNG")) for im in originals])
        copies = [data_url(edited_copy(im, seed=i)) for i, im in enumerate(originals)]
        queries = ollama_embed(client, EFFNET, copies)
    # TF-Lite preprocessing written as a transformers processor: short side 224 (bilinear),
    # centre crop, (x - 127) / 128.
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": 224},
        resample=2,
        crop_size={"height": 224, "width": 224},
        rescale_factor=1.0,
        image_mean=[127.0] * 3,
        image_std=[128.0] * 3,
    )
    pixels = processor(images=originals, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        pooled, _ = efficientnet_module()(pixels)
    parity = cosines(stored, pooled.numpy())
    similarity = queries @ stored.T
    same = np.diag(similarity)
    others = np.where(np.eye(len(originals), dtype=bool), -np.inf, similarity).max(axis=1)
    NOTES.append(
        f"EfficientNet via server: 1 - cos with PyTorch <= {1 - parity.min():.1e}; retrieval "
        f"same-source min {same.min():.3f}, best other max {others.max():.3f}, "
        f"smallest margin {(same - others).min():.3f}"
    )
    assert parity.min() >= MIN_COSINE
    assert list(similarity.argmax(axis=1)) == list(range(len(originals)))
    assert (same - others).min() > 0.03


# -- URL fetching with 127.0.0.1 allow-listed ----------------------------------------------------


def refused_everywhere(client: httpx.Client, url: str, fragment: str, code: str) -> list[float]:
    """The URL to the vision model through /v1 (OpenAI's error shape), /api/embed and
    /img/embed (Ollama's): a 400 each time; returns how long each refusal took."""
    took = []
    for path, body in (
        ("/v1/embeddings", {"model": VISION, "input": [url]}),
        ("/api/embed", {"model": VISION, "input": url}),
        ("/img/embed", {"content": url}),
    ):
        started = time.monotonic()
        response = client.post(path, json=body)
        took.append(time.monotonic() - started)
        if path.startswith("/v1"):
            error = assert_openai_error(response, 400, fragment, code=code, param="input[0]")
            assert error["message"].startswith("input[0]: "), error
        else:
            assert_ollama_error(response, 400, fragment)
    return took


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/page.html", "not an image (Content-Type: text/html)"),
        ("/fake.png", "did not return JPEG, PNG, WebP, GIF, BMP or TIFF data"),
        ("/missing", "answered HTTP 404"),
        ("/gzip.png", "gzip-encoded body"),
        ("/hop/4", "redirected more than 3 times"),
    ],
    ids=lambda value: value.strip("/").replace("/", "-") if value.startswith("/") else "",
)
def test_non_images_are_refused(
    gateway: GatewayServer, images: ImageServer, path: str, fragment: str
) -> None:
    with gateway.client() as client:
        refused_everywhere(client, images.url(path), fragment, "image_fetch_failed")


def test_oversized_bodies_are_stopped_early(gateway: GatewayServer, images: ImageServer) -> None:
    with gateway.client() as client:
        # Declared: refused from the headers (the server waits DECLARED_PAUSE before its first
        # body byte, longer than the fetch timeout: a gateway that read on would time out).
        took = refused_everywhere(
            client,
            images.url("/declared-huge"),
            f"is {1024**3} bytes, more than the {MAX_BYTES}",
            "image_fetch_failed",
        )
        assert max(took) < FETCH_TIMEOUT < DECLARED_PAUSE, took
        # Undeclared: cut off mid-stream, just past the cap.
        response = client.post(
            "/v1/embeddings", json={"model": VISION, "input": [images.url("/endless")]}
        )
        error = assert_openai_error(response, 400, "larger than", code="image_fetch_failed")
    stopped = int(re.search(r"stopped after (\d+)", error["message"]).group(1))  # type: ignore[union-attr]
    time.sleep(0.3)  # let the image server notice the hang-up
    sent = images.sent["/endless"]
    NOTES.append(
        f"endless body: gateway stopped after {stopped} bytes (cap {MAX_BYTES}); "
        f"image server wrote {sent} of {ENDLESS_LIMIT}"
    )
    assert MAX_BYTES < stopped <= MAX_BYTES + CHUNK
    assert sent < ENDLESS_LIMIT // 8


@pytest.mark.parametrize("path", ["/slow", "/stall"])
def test_slow_bodies_time_out(gateway: GatewayServer, images: ImageServer, path: str) -> None:
    with gateway.client() as client:
        body = {"model": VISION, "input": images.url(path)}
        started = time.monotonic()
        refusal = client.post("/api/embed", json=body)
        assert_ollama_error(refusal, 400, f"took longer than {FETCH_TIMEOUT:g}s")
        elapsed = time.monotonic() - started
    NOTES.append(f"{path}: refused after {elapsed:.2f}s (fetch timeout {FETCH_TIMEOUT}s)")
    # Gave up at its deadline: not before it, and long before the slow bodies would end (30 s
    # of drip, 60 s of stall) - the slack is for a busy machine, not for a missed deadline.
    assert FETCH_TIMEOUT * 0.9 <= elapsed < FETCH_TIMEOUT + 10


def in_flight(server: GatewayServer, model: str) -> float:
    line = f'gateway_model_in_flight{{model="{model}"}} '
    text = httpx.get(server.url + "/metrics", timeout=30).text
    return float(next(row for row in text.splitlines() if row.startswith(line))[len(line) :])


def test_the_model_is_not_held_while_urls_are_fetched(
    gateway: GatewayServer, images: ImageServer
) -> None:
    """A request takes the model after its images are fetched and prepared: while a slow URL
    drips, the (loaded) model is not in flight, so it stays evictable and its keep_alive runs."""
    with gateway.client() as client:
        assert client.post(
            "/api/embed", json={"model": VISION, "input": images.url("/img.png")}
        ).is_success
        slow = images.url("/slow?held")
        with ThreadPoolExecutor(1) as pool:
            body = {"model": VISION, "input": [images.url("/img.png"), slow]}
            answer = pool.submit(client.post, "/api/embed", json=body)
            deadline = time.monotonic() + FETCH_TIMEOUT
            while "/slow?held" not in images.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "/slow?held" in images.requests
            time.sleep(0.5)  # the other image is fetched and prepared by now
            assert in_flight(gateway, VISION) == 0
            assert_ollama_error(answer.result(), 400, "input[1]: ")


def test_redirects_to_private_addresses_are_refused(
    gateway: GatewayServer, images: ImageServer, elsewhere: ImageServer
) -> None:
    """127.0.0.1 is allowed; where it redirects to is checked again, and refused."""
    targets = [
        elsewhere.url("/img.png"),  # 127.0.0.2: loopback, not allow-listed
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{images.port}/img.png",
        "http://10.0.0.1/img.png",
    ]
    before = len(images.requests)
    with gateway.client() as client:
        for target in targets:
            took = refused_everywhere(
                client,
                images.url("/to?u=" + target),
                "is not allowed",
                "image_url_forbidden",
            )
            assert max(took) < 1.0, (target, took)  # refused, not timed out
    assert elsewhere.requests == []
    # The first hop was fetched each time (three routes, four targets); nothing else was.
    assert len(images.requests) - before == 3 * len(targets)
    assert all(path.startswith("/to?u=") for path in images.requests[before:])


@pytest.fixture(scope="module")
def tls_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    """An https image server with a self-signed certificate (for localhost)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    with ImageServer(SERVED_PNG.data, SERVED_JPEG.data, certificate=cert, key=key) as running:
        yield running


def test_https_certificates_are_verified(gateway: GatewayServer, tls_images: ImageServer) -> None:
    """An allow-listed host does not switch certificate checks off: an unknown CA is a 400."""
    with gateway.client() as client:
        refused_everywhere(
            client,
            tls_images.url("/img.png"),
            "CERTIFICATE_VERIFY_FAILED",
            "image_fetch_failed",
        )
    assert tls_images.sent.get("/img.png", 0) == 0  # no image bytes went out


# -- URL fetching with the default policy --------------------------------------------------------


def test_default_policy_refuses_private_destinations(
    guarded: GatewayServer, images: ImageServer
) -> None:
    port = images.port
    forbidden = [
        images.url("/img.png"),  # 127.0.0.1
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{port}/img.png",
        "http://10.0.0.1/img.png",
        f"http://localhost:{port}/img.png",  # a name that resolves to loopback
        f"http://127.1:{port}/img.png",  # inet_aton shorthand
        f"http://[::ffff:127.0.0.1]:{port}/img.png",  # IPv4-mapped IPv6
        images.url("/to?u=" + images.url("/img.png")),
    ]
    with guarded.client() as client:
        img_embed(client, data_url(tiny_png(1)))  # load the model: refusals below are timed
        before = len(images.requests)
        for url in forbidden:
            took = refused_everywhere(client, url, "is not allowed", "image_url_forbidden")
            assert max(took) < 1.0, (url, took)
            stats = client.post("/img/stats", json={"content": url})
            assert_ollama_error(stats, 400, "is not allowed")
        with pytest.raises(openai.BadRequestError) as caught:
            sdk(guarded).embeddings.create(model=VISION, input=[forbidden[1]])
        assert caught.value.status_code == 400
        with pytest.raises(ollama.ResponseError) as refused:
            ollama.Client(host=guarded.url).embed(model=VISION, input=forbidden[4])
        assert refused.value.status_code == 400 and "is not allowed" in refused.value.error
        # Only the address named by the client is disclosed, never what a name resolves to.
        hidden = client.post("/api/embed", json={"model": VISION, "input": forbidden[4]})
        assert "127.0.0.1" not in hidden.json()["error"]
    assert len(images.requests) == before, images.requests[before:]


# -- bad images ----------------------------------------------------------------------------------


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


@pytest.mark.parametrize("form", ["data-url", "base64"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_images_get_a_clear_400(gateway: GatewayServer, name: str, form: str) -> None:
    data, fragment = bad_images()[name]
    content = data_url(data) if form == "data-url" else raw_base64(data)
    with gateway.client() as client:
        started = time.monotonic()
        assert_ollama_error(client.post("/img/embed", json={"content": content}), 400, fragment)
        took = time.monotonic() - started
        assert took < 2.0, took  # refused at once (bombs from the header alone)
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "OK"
        assert img_embed(client, data_url(tiny_png(2))).shape == (768,)


def test_a_bad_image_in_a_list_is_named_by_its_index(gateway: GatewayServer) -> None:
    data, fragment = bad_images()["truncated-jpeg"]
    mixed = [data_url(tiny_png(3)), {"text": "hello"}, {"image": raw_base64(data)}]
    with gateway.client() as client:
        response = client.post("/v1/embeddings", json={"model": VISION, "input": mixed})
        error = assert_openai_error(response, 400, fragment, code="invalid_image", param="input[2]")
        assert error["message"].startswith("input[2]: ")
        batch = client.post(
            "/img/batch", json={"contents": [data_url(tiny_png(3)), data_url(data)]}
        )
        assert assert_ollama_error(batch, 400, fragment).startswith("contents[1]: ")
        ollama_shape = {"model": VISION, "input": [data_url(tiny_png(3)), "a dog", data_url(data)]}
        response = client.post("/api/embed", json=ollama_shape)
        assert assert_ollama_error(response, 400, fragment).startswith("input[2]: ")
        one = client.post("/img/embed", json={"content": data_url(data)})
        assert assert_ollama_error(one, 400, fragment).startswith("content: ")
        empty = client.post("/img/batch", json={"contents": [data_url(tiny_png(3)), " "]})
        assert_ollama_error(empty, 400, "contents[1] is empty")


# -- what each model accepts ---------------------------------------------------------------------


def test_a_text_model_refuses_images(gateway: GatewayServer) -> None:
    image = data_url(tiny_png(4))
    with gateway.client() as client:
        for body in (
            {"model": NOMIC, "input": [{"image": image}]},
            {"model": NOMIC, "input": ["hello", {"image": image}]},
            {"model": NOMIC, "input": [image], "modality": "image"},
        ):
            response = client.post("/v1/embeddings", json=body)
            where = "input[1]" if len(body["input"]) == 2 else "input[0]"
            assert_openai_error(
                response,
                400,
                f"{where} is an image",
                "embeds text only",
                VISION,
                code="unsupported_input",
                param="input",
            )
    with pytest.raises(openai.BadRequestError, match=VISION):
        sdk(gateway).embeddings.create(model=NOMIC, input=cast(Any, [{"image": image}]))


def test_an_image_only_model_refuses_text(gateway: GatewayServer) -> None:
    image = data_url(tiny_png(5))
    with gateway.client() as client:
        for inputs, where in ((["a dog on a beach"], 0), ([image, {"text": "a dog"}], 1)):
            response = client.post("/v1/embeddings", json={"model": EFFNET, "input": inputs})
            assert_openai_error(
                response, 400, f"input[{where}] is text", "images only", code="unsupported_input"
            )
        response = client.post("/api/embed", json={"model": EFFNET, "input": "a dog"})
        assert_ollama_error(response, 400, EFFNET, "images only")
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=gateway.url).embed(model=EFFNET, input=["a dog"])
    assert caught.value.status_code == 400


def test_too_many_images(gateway: GatewayServer) -> None:
    image = data_url(tiny_png(6))
    over = f"too many images: {MAX_IMAGES + 1} (at most {MAX_IMAGES}"
    with gateway.client() as client:
        body = {"model": VISION, "input": [image] * (MAX_IMAGES + 1)}
        assert_openai_error(client.post("/v1/embeddings", json=body), 400, over)
        assert_ollama_error(client.post("/api/embed", json=body), 400, over)
        batch = client.post("/img/batch", json={"contents": [image] * (MAX_IMAGES + 1)})
        assert_ollama_error(batch, 400, over)
        # At the limit, with texts beside the images: fine (texts do not count).
        rows = openai_embed(client, VISION, [image] * MAX_IMAGES + ["a", "b", "c"])
        assert rows.shape == (MAX_IMAGES + 3, 768)


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"image": 5}, 'input[1] must be a string, {"text": ...} or {"image": ...}'),
        ({"text": "a", "image": "b"}, "input[1] must be a string"),
        ({"video": "x"}, "input[1] must be a string"),
        ({"image": ""}, "input[1] is empty"),
        ({"image": "   "}, "input[1] is empty"),
        ({"image": "file:///etc/passwd"}, "unsupported image reference scheme 'file'"),
        ({"image": "not an image, just words"}, "expected an http(s) URL"),
    ],
)
def test_malformed_image_items(gateway: GatewayServer, item: dict, fragment: str) -> None:
    with gateway.client() as client:
        body = {"model": VISION, "input": ["a cat", item]}
        assert_openai_error(client.post("/v1/embeddings", json=body), 400, fragment)


# -- /img/stats and /img/batch -------------------------------------------------------------------


def exif_jpeg() -> tuple[bytes, np.ndarray]:
    """A JPEG with camera EXIF and orientation 6, and the RGB pixels a viewer shows."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 1"  # Model
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    sub[0x829A] = IFDRational(1, 250)  # ExposureTime
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (IFDRational(47), IFDRational(22), IFDRational(3, 2))
    data = encode(photo_like(41, 90, 60), "JPEG", quality=95, exif=exif)
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return data, np.rot90(stored, k=-1)


def test_img_stats(gateway: GatewayServer, images: ImageServer) -> None:
    data, shown = exif_jpeg()
    with gateway.client() as client:
        for method in ("arithmetic", "geometric"):
            mean, dominant = seed_reference(shown.reshape(-1, 3), method)
            for content in (data_url(data), raw_base64(data)):
                response = client.post(
                    "/img/stats", json={"content": content, "averaging_method": method}
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert set(body) == {"exif_data", "color_data", "time_ms"}
                exif = body["exif_data"]
                assert (exif["Make"], exif["Model"], exif["Orientation"]) == (
                    "TestCam",
                    "Model 1",
                    6,
                )
                assert exif["DateTimeOriginal"] == "2024:05:06 07:08:09"
                assert exif["ExposureTime"] == pytest.approx(0.004)
                assert exif["GPSLatitudeRef"] == "N"
                assert exif["GPSLatitude"] == pytest.approx([47.0, 22.0, 1.5])
                colors = body["color_data"]
                assert colors["avg_color"]["method"] == method
                np.testing.assert_allclose(colors["avg_color"]["rgb"], mean, atol=1e-6)
                np.testing.assert_allclose(colors["dominant_color"]["rgb"], dominant, atol=1e-6)
                r, g, b = (round(c * 255) for c in mean)
                assert colors["avg_color"]["hex"] == f"#{r:02x}{g:02x}{b:02x}"
        default = client.post("/img/stats", json={"content": data_url(data)}).json()
        assert default["color_data"]["avg_color"]["method"] == "arithmetic"
        # By URL: the same answer as for the same bytes inline.
        by_url = client.post("/img/stats", json={"content": images.url("/img.jpg")})
        inline = client.post("/img/stats", json={"content": data_url(SERVED_JPEG.data)})
        assert by_url.status_code == 200 and inline.status_code == 200, by_url.text
        strip = {"time_ms"}
        assert {k: v for k, v in by_url.json().items() if k not in strip} == {
            k: v for k, v in inline.json().items() if k not in strip
        }
        bad_method = client.post(
            "/img/stats", json={"content": data_url(data), "averaging_method": "median"}
        )
        assert_ollama_error(bad_method, 400, "averaging_method", "median")
        for content, fragment in (
            (raw_base64(bad_images()["random-bytes"][0]), "not a supported image"),
            (data_url(bad_images()["zero-by-zero"][0]), "no pixels"),
        ):
            bad = client.post("/img/stats", json={"content": content})
            assert_ollama_error(bad, 400, fragment)


def test_img_stats_words_a_bad_content_as_img_embed_does(
    gateway: GatewayServer, images: ImageServer
) -> None:
    """/img/stats left out the `content: ` that /img/embed puts before what is wrong with the
    image, and said "an image must be a non-empty string" where /img/embed says "content is
    empty"."""
    bad = bad_images()
    contents = [
        "",
        "   ",
        raw_base64(bad["random-bytes"][0]),
        data_url(bad["zero-by-zero"][0]),
        data_url(bad["bomb-header-100000x100000"][0]),
        "data:text/plain;base64,aGk=",
        "file:///etc/passwd",
        "not an image, just words",
        images.url("/missing"),
        images.url("/page.html"),
        "http://10.0.0.1/img.png",  # not in this server's allow-list
    ]
    with gateway.client() as client:
        for content in contents:
            embed = client.post("/img/embed", json={"content": content})
            stats = client.post("/img/stats", json={"content": content})
            said = assert_ollama_error(embed, 400, "content")
            assert said.startswith(("content: ", "content is empty")), said
            assert (stats.status_code, stats.json()) == (400, embed.json()), content[:40]


def test_img_batch_keeps_input_order(
    gateway: GatewayServer, images: ImageServer, expected: dict[str, np.ndarray]
) -> None:
    a, b, c = BY_NAME["webp-lossy-square"], BY_NAME["jpeg-cmyk"], BY_NAME["png-palette-transparent"]
    contents = [data_url(a.data), raw_base64(b.data), images.url("/img.jpg"), data_url(c.data)]
    names = [a.name, b.name, SERVED_JPEG.name, c.name]
    with gateway.client() as client:
        forwards = img_batch(client, contents)
        backwards = img_batch(client, contents[::-1])
        singles = np.stack([img_embed(client, content) for content in contents])
        narrow = img_batch(client, contents, dim=256)
        empty = client.post("/img/batch", json={"contents": []})
    check_images(forwards, names, expected, "/img/batch order")
    np.testing.assert_allclose(backwards[::-1], forwards, atol=1e-5)
    np.testing.assert_allclose(singles, forwards, atol=1e-5)
    np.testing.assert_allclose(narrow, sliced(forwards, 256), atol=1e-5)
    assert empty.status_code == 200 and empty.json()["embeddings"] == []


def test_health_after_all_of_it(gateway: GatewayServer) -> None:
    with gateway.client() as client:
        img_embed(client, data_url(tiny_png(9)))
        response = client.get("/health")
        info = client.get("/info").json()
    body = response.json()
    assert response.status_code == 200 and body["status"] == "OK", body
    assert body["vision_model"] is True and body["models"][VISION] == "loaded"
    assert info["default_image_model"] == VISION
