"""/img/stats (EXIF and colours) and /img/batch, and the server's health after the whole
package."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from tests.support.api import assert_ollama_error
from tests.support.color_reference import seed_reference
from tests.support.image_api import data_url, raw_base64
from tests.support.image_gateway import (
    BY_NAME,
    SERVED_JPEG,
    VISION,
    bad_images,
    check_images,
    img_batch,
    img_embed,
    sliced,
    tiny_png,
)
from tests.support.image_server import ImageServer
from tools.gateway_server import GatewayServer
from tools.vision import encode, photo_like

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
