"""Texts and images in one request: input order, the cross-modal contract (text to the
vision model is a nomic query), and what a text-only or an image-only model refuses."""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np
import ollama
import openai
import pytest

from tests.support.api import assert_ollama_error, assert_openai_error, ollama_embed, openai_embed
from tests.support.image_api import data_url, raw_base64
from tests.support.image_gateway import (
    BY_NAME,
    EFFNET,
    FETCH_TIMEOUT,
    NOTES,
    SERVED_JPEG,
    TEXT_MIN_COSINE,
    TEXTS,
    VISION,
    check_images,
    sdk,
    tiny_png,
)
from tests.support.image_server import ImageServer
from tests.support.models import NOMIC
from tests.support.reference import NOMIC_PREFIXES, NomicReference, cosines
from tools.gateway_server import GatewayServer

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
