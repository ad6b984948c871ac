"""Broken and hostile images, too many images, and malformed image items: a clear 400."""

from __future__ import annotations

import time

import pytest

from tests.support.api import assert_ollama_error, assert_openai_error, openai_embed
from tests.support.image_api import data_url, raw_base64
from tests.support.image_gateway import (
    BAD_NAMES,
    MAX_IMAGES,
    VISION,
    bad_images,
    img_embed,
    tiny_png,
)
from tools.gateway_server import GatewayServer

# -- bad images ----------------------------------------------------------------------------------


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
