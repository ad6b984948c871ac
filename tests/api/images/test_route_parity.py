"""Images on every route and through every client, against the transformers references;
Matryoshka widths on image models; EfficientNet-Lite0 on its real weights."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import ollama

from tests.support.api import assert_ollama_error, assert_openai_error, ollama_embed, openai_embed
from tests.support.image_api import VISION_DIMENSIONS, data_url, raw_base64
from tests.support.image_gateway import (
    BY_NAME,
    EFFNET,
    MIN_COSINE,
    NOTES,
    SERVED_JPEG,
    SERVED_PNG,
    TEXTS,
    VISION,
    check_images,
    img_batch,
    img_embed,
    sdk,
    tiny_png,
)
from tests.support.image_server import ImageServer
from tests.support.models import NOMIC
from tests.support.reference import cosines
from tests.support.vision_cases import CASES
from tools.gateway_server import GatewayServer
from tools.vision import edited_copy, efficientnet_module, encode, scene

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
