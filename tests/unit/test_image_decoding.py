"""Decoding details of gateway.media.decode: high-depth transparency, the pixel limit and the
JPEG scan limit."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gateway.core import Gateway
from gateway.media import ImagePolicy, InvalidImage, apply_pixel_limit, decode_image, image_stats
from gateway.media.decode import jpeg_scans, load_image, open_image
from gateway.settings import Settings
from tests.support.bad_images import jpeg_segments, many_scans_jpeg, png_header
from tools.vision import encode, photo_like


def sixteen_bit_grey_png(values: np.ndarray, transparent: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(out, "PNG", transparency=transparent)
    return out.getvalue()


def test_16_bit_grey_keeps_its_transparent_colour() -> None:
    # Column 0 is the transparent key; column 1 is 100/65535, which scales to the same 8-bit
    # grey (0) but is opaque; column 2 is mid grey.
    data = sixteen_bit_grey_png(np.array([[0, 100, 257 * 128]] * 2), transparent=0)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    rgb = np.asarray(decode_image(data))
    assert rgb[0].tolist() == [[255, 255, 255], [0, 0, 0], [128, 128, 128]]
    assert open_image(data).mode == "LA"


def test_16_bit_grey_all_transparent_has_no_colours() -> None:
    data = sixteen_bit_grey_png(np.zeros((8, 8)), transparent=0)
    assert np.asarray(decode_image(data)).min() == 255  # white, as the 8-bit picture
    assert image_stats(data).color_data is None


def test_16_bit_grey_transparency_survives_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    out = io.BytesIO()
    values = np.zeros((10, 20), np.uint16)
    values[:, 0] = 65535  # the left column, opaque white -> the top row after rotation
    Image.fromarray(values).save(out, "PNG", transparency=0, exif=exif.tobytes())
    image = open_image(out.getvalue())
    assert (image.mode, image.size) == ("LA", (10, 20))
    alpha = np.asarray(image)[..., 1]
    assert alpha[0].tolist() == [255] * 10 and alpha[1:].max() == 0


# -- the pixel limit -----------------------------------------------------------------------------


@pytest.fixture
def pillow_limit() -> Iterator[None]:
    """apply_pixel_limit changes process-wide state: put the default back afterwards."""
    yield
    apply_pixel_limit(ImagePolicy())


def test_pixel_limit_is_named_in_the_gateways_words() -> None:
    # 225 MP: above Pillow's own hard limit (178956970), which used to answer first.
    with pytest.raises(InvalidImage) as caught:
        load_image(png_header(15_000, 15_000))
    assert caught.value.message == (
        "the image is 15000x15000 = 225000000 pixels, more than the 50000000 allowed"
    )


def test_a_configured_limit_above_pillows_default_takes_effect(pillow_limit: None) -> None:
    policy = ImagePolicy(max_pixels=300_000_000)
    apply_pixel_limit(policy)
    with pytest.raises(InvalidImage, match="truncated"):  # past the size checks, to the pixels
        load_image(png_header(15_000, 15_000), policy)
    with pytest.raises(InvalidImage, match="400000000 pixels, more than the 300000000 allowed"):
        load_image(png_header(20_000, 20_000), policy)


def test_allowed_sizes_raise_no_pillow_warning(pillow_limit: None) -> None:
    policy = ImagePolicy(max_pixels=300_000_000)
    apply_pixel_limit(policy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Pillow used to warn above 89.5 MP, allowed or not
        with pytest.raises(InvalidImage, match="truncated"):
            load_image(png_header(10_000, 10_000), policy)
    assert caught == []

    # Between half the limit and the limit Pillow warns; the filter that apply_pixel_limit
    # installs drops it (pytest resets filters per test, so it is applied again here).
    with warnings.catch_warnings(record=True) as caught:
        apply_pixel_limit(policy)
        with pytest.raises(InvalidImage, match="truncated"):
            load_image(png_header(13_000, 13_000), policy)
    assert caught == []


def gif_frame_bomb(width: int, height: int) -> bytes:
    """A 1x1 GIF whose first frame is width x height, to be disposed to the background: Pillow
    allocates the disposal area while opening, before the gateway sees the size."""
    screen = b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + bytes(3) + b"\xff" * 3
    control = b"!\xf9\x04" + bytes([2 << 2 | 1]) + bytes(4)  # disposal 2, transparent index 0
    frame = b"," + struct.pack("<HHHH", 0, 0, width, height) + b"\x00\x02\x02\x4c\x01\x00;"
    return screen + control + frame


def test_pillows_own_checks_use_the_same_limit() -> None:
    with pytest.raises(InvalidImage) as caught:
        load_image(gif_frame_bomb(8_000, 8_000))
    assert caught.value.message == "the image is 64000000 pixels, more than the 50000000 allowed"


def test_the_gateway_applies_its_configured_limit(tmp_path: Path, pillow_limit: None) -> None:
    registry = tmp_path / "registry.yaml"
    entry = {"kind": "text", "source": "/nonexistent", "dim": 8,
             "files": {"model": "m.onnx", "tokenizer": "t.json"}}  # fmt: skip
    registry.write_text(yaml.safe_dump({"models": {"tiny": entry}}))
    settings = Settings.load(environ={
        "GATEWAY_REGISTRY": str(registry),
        "GATEWAY_MODELS_DIR": str(tmp_path / "models"),
        "GATEWAY_IMAGE_MAX_PIXELS": "300000000",
    })  # fmt: skip
    Gateway.build(settings)
    assert Image.MAX_IMAGE_PIXELS == 150_000_000  # Pillow refuses above twice this


# -- the JPEG scan limit -------------------------------------------------------------------------


def test_ordinary_jpegs_are_within_the_scan_limit() -> None:
    photo = photo_like(3, 96, 64)
    for image, options, scans in [
        (photo, {}, 1),
        (photo, {"progressive": True}, 10),
        (photo.convert("L"), {"progressive": True}, 6),
        (photo.convert("CMYK"), {"progressive": True}, 18),
    ]:
        data = encode(image, "JPEG", **options)
        assert jpeg_scans(data, stop_after=100) == scans, (image.mode, options)
        assert open_image(data).size == (96, 64)


def test_the_scan_count_follows_libjpegs_walk() -> None:
    limit = ImagePolicy().max_jpeg_scans
    # A progressive thumbnail inside APP1 is skipped with its segment.
    thumbnail = encode(photo_like(4, 32, 24), "JPEG", progressive=True)
    app1 = b"Exif\x00\x00" + thumbnail
    plain = encode(photo_like(5, 96, 64), "JPEG", progressive=True)
    with_thumbnail = plain[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + plain[2:]
    assert jpeg_scans(with_thumbnail, stop_after=limit) == 10
    assert open_image(with_thumbnail).size == (96, 64)
    # An MPO's later pictures are not decoded, so they do not count.
    out = io.BytesIO()
    photo_like(6, 40, 30).save(out, "MPO", save_all=True, append_images=[photo_like(7, 40, 30)] * 2)
    assert jpeg_scans(out.getvalue(), stop_after=limit) == 1
    # Junk between segments: libjpeg skips it (with a warning) and decodes every scan.
    assert jpeg_scans(many_scans_jpeg(64, 64, 200, junk=b"\x00junk"), stop_after=1000) == 206
    # Counting stops one past the limit.
    assert jpeg_scans(many_scans_jpeg(64, 64, 10_000), stop_after=limit) == limit + 1


def test_scans_up_to_the_limit_decode_and_one_more_is_refused() -> None:
    policy = ImagePolicy(max_jpeg_scans=50)
    base = len([m for m, _ in jpeg_segments(many_scans_jpeg(64, 48, 0)) if m == 0xDA])
    assert open_image(many_scans_jpeg(64, 48, 50 - base), policy).size == (64, 48)
    with pytest.raises(InvalidImage, match="more than the 50 scans"):
        open_image(many_scans_jpeg(64, 48, 51 - base), policy)
    # /img/stats decodes through the same check.
    with pytest.raises(InvalidImage, match="more than the 50 scans"):
        image_stats(many_scans_jpeg(64, 48, 51 - base), policy=policy)
    with pytest.raises(ValueError, match="max_jpeg_scans"):
        ImagePolicy(max_jpeg_scans=0)
