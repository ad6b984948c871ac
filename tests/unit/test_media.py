"""gateway.media without a network: image references, address rules, decoding limits, statistics.

Everything here is pure: data URLs and base64, which addresses the fetcher may dial, how bad or
oversized images are refused, colour conversion and image statistics. Fetching over HTTP(S) is
tests/api/test_media_fetch.py.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import time

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from gateway.errors import GatewayError, InvalidRequest
from gateway.media import (
    FetchPolicy,
    ImagePolicy,
    InvalidImage,
    decode_image,
    image_stats,
    parse_image_ref,
)
from gateway.media.decode import MEDIA_TYPES
from gateway.media.fetch import ACCEPT, address_allowed, non_public_reason
from tests.support.bad_images import many_scans_jpeg, png_header, real_bomb
from tests.support.color_reference import seed_reference
from tests.support.vision_cases import CASES, Case
from tools.vision import encode, photo_like

MiB = 1024 * 1024
PNG = encode(photo_like(1, 64, 48), "PNG")
JPEG = encode(photo_like(2, 80, 60), "JPEG", quality=90)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("fec0::1", "site-local"),
        ("fd00::1", "private"),
        ("100.64.0.1", "non-global"),
        ("::ffff:10.0.0.1", "private (embedded in IPv6)"),
        ("64:ff9b::7f00:1", "loopback (embedded in IPv6)"),
        ("2002:a9fe:a9fe::", "link-local (embedded in IPv6)"),
    ],
)
def test_address_classification(address: str, reason: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert non_public_reason(ip) == reason
    assert address_allowed(ip, FetchPolicy()) is (reason is None)


def test_allow_list_parsing() -> None:
    parsed = FetchPolicy.with_allow_list(["images.internal", " 10.0.0.0/8 ", "[fd00::]", ""])
    assert parsed.allow_hosts == frozenset({"images.internal"})
    assert parsed.host_allowed("Images.Internal")
    assert address_allowed(ipaddress.ip_address("10.9.8.7"), parsed)
    assert address_allowed(ipaddress.ip_address("::ffff:10.9.8.7"), parsed)
    assert address_allowed(ipaddress.ip_address("fd00::"), parsed)
    assert not address_allowed(ipaddress.ip_address("192.168.0.1"), parsed)


def test_data_urls_and_raw_base64() -> None:
    b64 = base64.b64encode(PNG).decode()
    limit = 20 * MiB
    assert parse_image_ref(f"data:image/png;base64,{b64}", max_bytes=limit).data == PNG
    assert parse_image_ref(f"DATA:Image/PNG;name=a.png;base64,{b64}", max_bytes=limit).data == PNG
    assert parse_image_ref(b64, max_bytes=limit).data == PNG
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    assert parse_image_ref(wrapped, max_bytes=limit).data == PNG
    assert parse_image_ref(b64.rstrip("="), max_bytes=limit).data == PNG
    urlsafe = base64.urlsafe_b64encode(JPEG).decode()
    assert parse_image_ref(urlsafe, max_bytes=limit).data == JPEG
    ref = parse_image_ref("  HTTPS://example.com/a.png ", max_bytes=limit)
    assert ref.is_url and ref.url == "HTTPS://example.com/a.png"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("data:text/plain;base64,aGVsbG8=", "not an image type"),
        ("data:;base64,aGVsbG8=", "not an image type"),
        ("data:image/png,rawbytes", "base64-encoded"),
        ("data:image/png;base64", "malformed data URL"),
        ("data:image/png;base64,!!!!", "expected an http(s) URL"),
        ("file:///etc/passwd", "unsupported image reference scheme 'file'"),
        ("ftp://example.com/a.png", "unsupported image reference scheme 'ftp'"),
        # Was "unsupported image reference scheme 'https'", as if https were not accepted.
        ("https:/example.com/a.png", "malformed image URL: expected https://host/path"),
        ("HTTP:\\\\example.com\\a.png", "malformed image URL: expected http://host/path"),
        ("not an image at all", "expected an http(s) URL"),
        ("abcde", "truncated"),
        ("A" * 40, None),  # valid base64, refused later as not an image
    ],
)
def test_bad_references(value: str, message: str | None) -> None:
    if message is None:
        data = parse_image_ref(value, max_bytes=MiB).data
        assert data is not None
        with pytest.raises(InvalidImage, match="not a supported image"):
            decode_image(data)
        return
    with pytest.raises(InvalidImage, match=re.escape(message)) as caught:
        parse_image_ref(value, max_bytes=MiB)
    assert caught.value.status_code == 400 and caught.value.param == "input"


def test_inline_size_is_checked_before_decoding() -> None:
    big = base64.b64encode(bytes(2 * MiB)).decode()
    with pytest.raises(InvalidImage, match=f"larger than the {MiB} bytes"):
        parse_image_ref(big, max_bytes=MiB)


@pytest.mark.parametrize("limit", [999, 1000, 1001])
@pytest.mark.parametrize("padded", [True, False], ids=["padded", "unpadded"])
def test_an_inline_image_of_exactly_the_limit_is_taken(limit: int, padded: bool) -> None:
    """The early check counted the `=` padding as data: an image of exactly the limit (a size
    not a multiple of 3), sent padded as base64 encoders write it, was refused as larger than
    the limit, which a fetched image of that size and `gateway embed`'s size check pass."""
    for size, fits in ((limit, True), (limit + 1, False)):
        text = base64.b64encode(bytes(size)).decode()
        text = text if padded else text.rstrip("=")
        if fits:
            assert parse_image_ref(text, max_bytes=limit).data == bytes(size)
        else:
            with pytest.raises(InvalidImage, match=f"larger than the {limit} bytes"):
                parse_image_ref(text, max_bytes=limit)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bomb-8000x8000-header", "8000x8000 = 64000000 pixels, more than the 50000000"),
        ("bomb-8000x8000-real", "8000x8000 = 64000000 pixels, more than the 50000000"),
        ("bomb-100000x100000", "100000x100000 = 10000000000 pixels, more than the 50000000"),
        ("zero-by-zero", "no pixels (0x0)"),
        ("truncated-jpeg", "cannot decode the JPEG image: image file is truncated"),
        ("random-bytes", "not a supported image"),
        ("png-signature-then-noise", "PNG data is corrupt"),
        ("empty", "empty (0 bytes)"),
        ("jpeg-many-scans", "the JPEG has more than the 100 scans (progressive passes) allowed"),
    ],
)
def test_bad_images_get_a_clear_error(name: str, message: str) -> None:
    rng = np.random.default_rng(0)
    data = {
        "bomb-8000x8000-header": lambda: png_header(8000, 8000),
        "bomb-8000x8000-real": real_bomb,
        "bomb-100000x100000": lambda: png_header(100_000, 100_000),
        "zero-by-zero": lambda: png_header(0, 0),
        "truncated-jpeg": lambda: JPEG[: len(JPEG) * 2 // 3],
        "random-bytes": lambda: rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "png-signature-then-noise": lambda: PNG[:8] + rng.integers(0, 256, 500, np.uint8).tobytes(),
        "empty": lambda: b"",
        # 2000 scans of 1000x1000: 1 s of libjpeg per 300 scans, 16 KB.
        "jpeg-many-scans": lambda: many_scans_jpeg(1000, 1000, 2000),
    }[name]()
    started = time.monotonic()
    with pytest.raises(InvalidImage, match=re.escape(message)) as caught:
        decode_image(data)
    assert time.monotonic() - started < 1.0  # refused from the header, not decoded
    assert isinstance(caught.value, GatewayError) and caught.value.status_code == 400


def test_policy_limits() -> None:
    with pytest.raises(InvalidImage, match="64x48 = 3072 pixels, more than the 3000"):
        decode_image(PNG, ImagePolicy(max_pixels=3000))
    with pytest.raises(InvalidImage, match="more than the 100 allowed"):
        decode_image(PNG, ImagePolicy(max_bytes=100))
    with pytest.raises(InvalidImage, match="not a supported image"):
        decode_image(JPEG, ImagePolicy(formats=frozenset({"PNG"})))


def pixels(image: Image.Image) -> list[tuple[int, ...]]:
    return [tuple(p) for p in np.asarray(image).reshape(-1, 3).tolist()]


def test_mode_conversions() -> None:
    """The rules the parity test pins against transformers, checked on tiny images."""
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (0, 255))
    la.putpixel((1, 0), (0, 0))  # opaque black, clear black
    assert pixels(decode_image(encode(la, "PNG"))) == [(0, 0, 0), (255, 255, 255)]
    sixteen = Image.fromarray(np.array([[0, 257 * 128, 65535]], np.uint16))
    assert pixels(decode_image(encode(sixteen, "TIFF"))) == [
        (0, 0, 0), (128, 128, 128), (255, 255, 255)]  # fmt: skip
    bilevel = Image.new("1", (2, 1))
    bilevel.putpixel((1, 0), 255)
    assert pixels(decode_image(encode(bilevel, "BMP"))) == [(0, 0, 0), (255, 255, 255)]


@pytest.mark.parametrize("method", ["arithmetic", "geometric"])
def test_colors_match_the_seed_recipe(method: str) -> None:
    image = photo_like(30, 300, 200)
    stats = image_stats(encode(image, "PNG"), averaging_method=method)
    assert stats.color_data is not None
    mean, dominant = seed_reference(np.asarray(image).reshape(-1, 3), method)
    np.testing.assert_allclose(stats.color_data.avg_color.rgb, mean, atol=1e-6)
    np.testing.assert_allclose(stats.color_data.dominant_color.rgb, dominant, atol=1e-6)
    assert stats.color_data.avg_color.method == method
    r, g, b = (round(c * 255) for c in mean)
    assert stats.color_data.avg_color.hex == f"#{r:02x}{g:02x}{b:02x}"


def test_colors_on_known_images() -> None:
    half = np.zeros((10, 20, 3), np.uint8)
    half[:, :10] = (255, 0, 0)
    half[:, 10:] = (0, 0, 255)
    stats = image_stats(encode(Image.fromarray(half), "PNG"))
    assert stats.color_data is not None
    assert stats.color_data.avg_color.rgb == pytest.approx((0.5, 0.0, 0.5))
    geometric = image_stats(encode(Image.fromarray(half), "PNG"), averaging_method="geometric")
    assert geometric.color_data is not None
    expected = np.sqrt(255 * 1e-8) / 255  # half 255, half floored at 1e-8
    assert geometric.color_data.avg_color.rgb == pytest.approx((expected, 1e-8 / 255, expected))
    # Pixels with alpha < 128 do not count; fully transparent images have no colours.
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = (255, 0, 0, 100)
    rgba[:, 2:] = (0, 255, 0, 200)
    stats = image_stats(encode(Image.fromarray(rgba), "PNG"))
    assert stats.color_data is not None
    assert stats.color_data.avg_color.hex == "#00ff00"
    assert stats.color_data.dominant_color.hex == "#00ff00"
    clear = image_stats(encode(Image.new("RGBA", (4, 4), (9, 9, 9, 0)), "PNG"))
    assert clear.color_data is None


def test_large_images_are_measured_on_a_thumbnail() -> None:
    image = photo_like(31, 1000, 700)  # both sides past THUMBNAIL_SIZE (512): it is shrunk
    stats = image_stats(encode(image, "PNG"))
    assert stats.color_data is not None
    full = np.asarray(image).reshape(-1, 3).mean(axis=0) / 255
    np.testing.assert_allclose(stats.color_data.avg_color.rgb, full, atol=0.01)


def test_exif_fields() -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 1\x00"  # Model
    exif[0x0112] = 6  # Orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    sub[0x829A] = IFDRational(1, 100)  # ExposureTime
    sub[0x9000] = b"0232"  # ExifVersion
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (IFDRational(52), IFDRational(30), IFDRational(31, 2))
    stats = image_stats(encode(photo_like(32, 40, 30), "JPEG", exif=exif))
    fields = stats.exif_data
    assert fields["Make"] == "TestCam" and fields["Model"] == "Model 1"
    assert fields["Orientation"] == 6
    assert fields["DateTimeOriginal"] == "2024:05:06 07:08:09"
    assert fields["ExposureTime"] == pytest.approx(0.01)
    assert fields["ExifVersion"] == "30323332"
    assert fields["GPSLatitudeRef"] == "N"
    assert fields["GPSLatitude"] == pytest.approx([52.0, 30.0, 15.5])
    assert "ExifOffset" not in fields and "GPSInfo" not in fields
    json.dumps(stats.to_dict())  # the route returns it as JSON

    gps[2] = (IFDRational(0), IFDRational(0), IFDRational(0))  # a camera's placeholder
    placeholder = image_stats(encode(photo_like(32, 40, 30), "JPEG", exif=exif)).exif_data
    assert "GPSLatitude" not in placeholder and placeholder["Make"] == "TestCam"
    assert image_stats(PNG).exif_data == {}


def test_stats_errors() -> None:
    with pytest.raises(InvalidRequest) as caught:
        image_stats(PNG, averaging_method="median")
    assert caught.value.param == "averaging_method"
    with pytest.raises(InvalidImage) as bad:
        image_stats(b"not an image")
    assert bad.value.param == "content"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decoding_rule_gives_the_expected_rgb(case: Case) -> None:
    image = decode_image(case.data)
    assert image.mode == "RGB"
    got = np.asarray(image).astype(np.int16)
    assert got.shape == case.reference.shape
    # Alpha compositing rounds in Pillow's integer arithmetic: at most one level off numpy's.
    tolerance = 1 if "transparent" in case.name or "rgba" in case.name else 0
    assert np.abs(got - case.reference).max() <= tolerance


def test_fetch_accepts_exactly_the_decoded_formats() -> None:
    """The fetcher's Accept header lists the decoder's formats, no wildcard a server could
    answer with AVIF."""
    assert set(MEDIA_TYPES) == ImagePolicy().formats
    assert ACCEPT.split(", ") == list(MEDIA_TYPES.values()) and "*" not in ACCEPT
