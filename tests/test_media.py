"""gateway.media: image references, safe URL fetching, decoding limits, image statistics.

Fetching runs against real HTTP(S) servers on loopback addresses (tests/support/image_server.py),
opened to the fetcher through the policy's allow-list exactly as an operator would open an
internal image store. Destinations that must be refused are refused before any connection: the
tests check the servers saw no request. No address outside this machine is ever dialled.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from gateway.errors import GatewayError, InvalidRequest
from gateway.media import (
    FetchPolicy,
    ForbiddenURL,
    ImageFetchError,
    ImagePolicy,
    InvalidImage,
    decode_image,
    fetch_image,
    image_stats,
    parse_image_ref,
    read_images,
)
from gateway.media.fetch import address_allowed, non_public_reason
from tests.support.bad_images import png_header, real_bomb
from tests.support.color_reference import seed_reference
from tests.support.image_server import CHUNK, DECLARED_PAUSE, ENDLESS_LIMIT, ImageServer
from tests.support.vision import encode, photo_like

MiB = 1024 * 1024
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)
PNG = encode(photo_like(1, 64, 48), "PNG")
JPEG = encode(photo_like(2, 80, 60), "JPEG", quality=90)


def policy(**changes: object) -> FetchPolicy:
    """127.0.0.1 opened (the test server), tight limits so failures come fast."""
    fields: dict[str, object] = {
        "allow_networks": LOOPBACK,
        "max_bytes": 1 * MiB,
        "connect_timeout": 1.0,
        "total_timeout": 3.0,
    }
    fields.update(changes)
    return FetchPolicy(**fields)  # type: ignore[arg-type]


def fetch(url: str, fetch_policy: FetchPolicy) -> bytes:
    return asyncio.run(fetch_image(url, fetch_policy)).data


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    with ImageServer(PNG, JPEG) as running:
        yield running


@pytest.fixture(scope="module")
def other_loopback() -> Iterator[ImageServer]:
    """A second server at 127.0.0.2: loopback too, but not in the allow-list."""
    with ImageServer(PNG, JPEG, host="127.0.0.2") as running:
        yield running


# -- fetching: what works ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/img.png", PNG), ("/img.jpg", JPEG), ("/octet.png", PNG), ("/untyped.png", PNG)],
)
def test_images_are_fetched(server: ImageServer, path: str, expected: bytes) -> None:
    assert fetch(server.url(path), policy()) == expected
    assert decode_image(expected).mode == "RGB"


def test_redirects_are_followed_up_to_three(server: ImageServer) -> None:
    result = asyncio.run(fetch_image(server.url("/hop/3"), policy()))
    assert result.data == PNG
    assert result.url == server.url("/hop/0")


def test_a_fourth_redirect_is_refused(server: ImageServer) -> None:
    before = len(server.requests)
    with pytest.raises(ImageFetchError, match="redirected more than 3 times"):
        fetch(server.url("/hop/4"), policy())
    # /hop/4, /3, /2 and /1 were fetched; the fourth redirect's target never was.
    assert server.requests[before:] == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]


def test_an_allow_listed_host_name_may_resolve_to_loopback(server: ImageServer) -> None:
    allowed = policy(allow_networks=(), allow_hosts=frozenset({"LocalHost"}))
    assert fetch(server.url("/img.png", host="localhost"), allowed) == PNG


def test_the_host_is_resolved_once_and_the_checked_address_dialled(
    server: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second lookup (DNS rebinding): the connection goes to the address that was checked."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    allowed = policy(allow_networks=(), allow_hosts=frozenset({"localhost"}))
    assert fetch(server.url("/hop/2", host="localhost"), allowed) == PNG
    # Three hops (two redirects), one lookup of the name each.
    assert lookups.count("localhost") == 3


# -- fetching: what is refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/page.html", "/fake.png", "/missing", "/gzip.png"], ids=lambda p: p.strip("/")
)
def test_non_images_are_refused(server: ImageServer, path: str) -> None:
    with pytest.raises(ImageFetchError) as caught:
        fetch(server.url(path), policy())
    message = caught.value.message
    expected = {
        "/page.html": "not an image (Content-Type: text/html)",
        "/fake.png": "did not return JPEG, PNG, WebP, GIF, BMP or TIFF data",
        "/missing": "answered HTTP 404",
        "/gzip.png": "gzip-encoded body",
    }[path]
    assert expected in message
    assert caught.value.status_code == 400


def test_a_declared_oversize_body_is_refused_before_it_is_read(server: ImageServer) -> None:
    started = time.monotonic()
    with pytest.raises(ImageFetchError, match=f"is {1024**3} bytes, more than the {MiB}"):
        fetch(server.url("/declared-huge"), policy(total_timeout=DECLARED_PAUSE / 2))
    # The server pauses before the first body byte: refusing sooner proves no body was read
    # (and a client that waited for the body would have hit its deadline, another error).
    assert time.monotonic() - started < DECLARED_PAUSE / 2


def test_a_growing_body_is_cut_off_at_the_cap(server: ImageServer) -> None:
    with pytest.raises(ImageFetchError, match="larger than the") as caught:
        fetch(server.url("/endless"), policy(total_timeout=60))
    stopped_after = int(re.search(r"stopped after (\d+)", caught.value.message).group(1))  # type: ignore[union-attr]
    # The client held at most the cap plus one read (httpcore reads 64 KiB at a time).
    assert MiB < stopped_after <= MiB + CHUNK
    time.sleep(0.3)  # let the server notice the hang-up
    sent = server.sent["/endless"]
    print(f"endless body: client stopped after {stopped_after} bytes; server wrote {sent}")
    # Kernel socket buffers absorb some megabytes; the rest of the 256 MiB never went out.
    assert sent < ENDLESS_LIMIT // 8


@pytest.mark.parametrize("path", ["/slow", "/stall"])
def test_slow_servers_time_out(server: ImageServer, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(ImageFetchError, match="took longer than 1s"):
        fetch(server.url(path), policy(total_timeout=1.0))
    elapsed = time.monotonic() - started
    print(f"{path}: gave up after {elapsed:.2f}s")
    # It waited for its deadline, and gave up then: /slow drips for 30 s and /stall hangs for
    # 60 s, so a fetch that ignored the deadline would take far longer than the slack allowed.
    assert 0.9 <= elapsed < 1.0 + 10


def forbidden_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/img.png",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{port}/img.png",
        "http://10.0.0.1/img.png",
        f"http://localhost:{port}/img.png",  # a name that resolves to loopback
        f"http://127.1:{port}/img.png",  # inet_aton shorthand for 127.0.0.1
        f"http://[::ffff:127.0.0.1]:{port}/img.png",  # IPv4-mapped IPv6
        f"http://[::ffff:a9fe:a9fe]:{port}/",  # mapped 169.254.169.254
        f"http://0.0.0.0:{port}/img.png",
        "http://224.0.0.1/img.png",
        "http://[fe80::1]/img.png",
        "http://100.64.0.1/img.png",  # carrier-grade NAT
        "http://[2002:7f00:1::]/img.png",  # 6to4 wrapping 127.0.0.1
    ]


def test_private_destinations_are_refused_by_default(server: ImageServer) -> None:
    """With the default policy none of these is even connected to."""
    before = len(server.requests)
    for url in forbidden_urls(server.port):
        started = time.monotonic()
        with pytest.raises(ForbiddenURL, match="is not allowed") as caught:
            fetch(url, FetchPolicy())
        assert caught.value.status_code == 400, url
        # Refused before connecting: a connection attempt would run into the connect timeout.
        assert time.monotonic() - started < FetchPolicy().connect_timeout, url
    assert len(server.requests) == before


def test_a_redirect_to_a_private_address_is_refused(
    server: ImageServer, other_loopback: ImageServer
) -> None:
    for target in (other_loopback.url("/img.png"), "http://169.254.169.254/latest/"):
        hop = server.url("/to?u=" + target)
        with pytest.raises(ForbiddenURL):
            fetch(hop, policy())
    assert other_loopback.requests == []
    # The same server is fine when the policy opens it.
    opened = policy(allow_networks=(*LOOPBACK, ipaddress.ip_network("127.0.0.2/32")))
    assert fetch(server.url("/to?u=" + other_loopback.url("/img.png")), opened) == PNG


def test_url_shape_rules(server: ImageServer) -> None:
    with pytest.raises(InvalidImage, match="credentials"):
        fetch(server.url("/img.png").replace("://", "://user:pw@"), policy())
    with pytest.raises(ForbiddenURL, match="port"):
        fetch(server.url("/img.png"), policy(allowed_ports=frozenset({80, 443})))
    with pytest.raises(InvalidImage, match="does not fetch image URLs"):
        fetch(server.url("/img.png"), policy(enabled=False))
    with pytest.raises(InvalidImage, match="control characters"):
        fetch(server.url("/img.png\r\nX-Injected: 1"), policy())
    with pytest.raises(InvalidImage, match="no host"):
        fetch("http:///img.png", policy())


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


# -- https: the pinned address, verified against the URL's name ------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ImageServer, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    with ImageServer(PNG, JPEG, certificate=cert, key=key) as running:
        yield running, cert


def test_https_checks_the_certificate_against_the_url_host(
    tls_server: tuple[ImageServer, Path],
) -> None:
    server, cert = tls_server
    trusted = policy(allow_networks=(), allow_hosts=frozenset({"localhost"}), ca_file=str(cert))
    assert fetch(server.url("/img.png", host="localhost"), trusted) == PNG
    # Unknown CA: refused.
    untrusted = policy(allow_networks=(), allow_hosts=frozenset({"localhost"}))
    with pytest.raises(ImageFetchError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(server.url("/img.png", host="localhost"), untrusted)
    # Same address by IP: the certificate names localhost, not 127.0.0.1.
    with pytest.raises(ImageFetchError, match=r"CERTIFICATE_VERIFY_FAILED.*IP address mismatch"):
        fetch(server.url("/img.png"), policy(ca_file=str(cert)))


# -- references -----------------------------------------------------------------------------------


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


def test_read_images_mixes_kinds_and_names_the_failing_input(server: ImageServer) -> None:
    b64 = base64.b64encode(JPEG).decode()
    refs = [server.url("/img.png"), f"data:image/jpeg;base64,{b64}", b64]
    images = asyncio.run(read_images(refs, fetch=policy(), image=ImagePolicy(),
                                     convert=lambda im: im.size))  # fmt: skip
    assert images == [(64, 48), (80, 60), (80, 60)]
    bad = [refs[1], server.url("/page.html")]
    with pytest.raises(ImageFetchError) as caught:
        asyncio.run(read_images(bad, fetch=policy(), image=ImagePolicy()))
    assert caught.value.param == "input[1]"
    assert caught.value.message.startswith("input[1]: ")


# -- decoding limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bomb-8000x8000-header", "8000x8000 = 64000000 pixels, more than the 50000000"),
        ("bomb-8000x8000-real", "8000x8000 = 64000000 pixels, more than the 50000000"),
        ("bomb-100000x100000", "too many pixels"),
        ("zero-by-zero", "no pixels (0x0)"),
        ("truncated-jpeg", "cannot decode the JPEG image: image file is truncated"),
        ("random-bytes", "not a supported image"),
        ("png-signature-then-noise", "PNG data is corrupt"),
        ("empty", "empty (0 bytes)"),
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


# -- image statistics -----------------------------------------------------------------------------


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
    image = photo_like(31, 1500, 1000)
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
