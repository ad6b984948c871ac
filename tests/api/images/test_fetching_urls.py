"""Image URLs: what the fetcher refuses, its byte and time limits, redirects, TLS, and the
default policy (public addresses only) on the `guarded` server."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import openai
import pytest

from tests.support.api import assert_ollama_error, assert_openai_error
from tests.support.image_api import data_url
from tests.support.image_gateway import (
    FETCH_TIMEOUT,
    MAX_BYTES,
    NOTES,
    SERVED_JPEG,
    SERVED_PNG,
    VISION,
    img_embed,
    sdk,
    tiny_png,
)
from tests.support.image_server import CHUNK, DECLARED_PAUSE, ENDLESS_LIMIT, ImageServer
from tools.gateway_server import GatewayServer

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
