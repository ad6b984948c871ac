"""gateway.media fetching image URLs safely; the pure parts are tests/unit/test_media.py.

Fetching runs against real HTTP(S) servers on loopback addresses (tests/support/image_server.py),
opened to the fetcher through the policy's allow-list exactly as an operator would open an
internal image store. Destinations that must be refused are refused before any connection: the
tests check the servers saw no request. No address outside this machine is ever dialled.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.media import (
    FetchPolicy,
    ForbiddenURL,
    ImageFetchError,
    ImagePolicy,
    InvalidImage,
    decode_image,
    fetch_image,
    read_images,
)
from tests.support.image_server import CHUNK, DECLARED_PAUSE, ENDLESS_LIMIT, ImageServer
from tools.vision import encode, photo_like

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


def test_accept_names_only_formats_the_gateway_decodes(server: ImageServer) -> None:
    """A negotiating server (an image CDN) answers what Accept allows: with `image/*` it chose
    AVIF, which the gateway cannot decode; the formats listed one by one get the PNG."""
    assert fetch(server.url("/negotiated"), policy()) == PNG


def test_url_shape_rules(server: ImageServer) -> None:
    with pytest.raises(InvalidImage, match="credentials"):
        fetch(server.url("/img.png").replace("://", "://user:pw@"), policy())
    # A public host (the literal needs no DNS) on a port outside the default 80, 443, 8080, 8443
    # is refused before any connection, also as a redirect's target; the allow-listed test
    # server is on a random port, which only the allow-list opens.
    public = "http://93.184.215.14:6379/img.png"
    for url in (public, server.url("/to?u=" + public)):
        with pytest.raises(ForbiddenURL, match="port 6379 is not allowed for a public host"):
            fetch(url, policy())
    assert fetch(server.url("/img.png"), policy(allowed_ports=frozenset({443}))) == PNG
    with pytest.raises(InvalidImage, match="does not fetch image URLs"):
        fetch(server.url("/img.png"), policy(enabled=False))
    with pytest.raises(InvalidImage, match="control characters"):
        fetch(server.url("/img.png\r\nX-Injected: 1"), policy())
    with pytest.raises(InvalidImage, match="no host"):
        fetch("http:///img.png", policy())
    # Port 0 is malformed, not "the default port": it was dialled on 80 (or 443).
    for url in ("http://127.0.0.1:0/img.png", "https://example.com:0/a.png"):
        with pytest.raises(InvalidImage, match="malformed image URL: port 0"):
            fetch(url, policy())


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


def test_read_images_fetches_each_distinct_url_once(server: ImageServer) -> None:
    """64 copies of one URL are one fetch (and one decode); every input still gets its image, in
    order, and a failing repeated URL is named by its first position."""
    png, jpg = server.url("/img.png?dedup"), server.url("/img.jpg?dedup")
    refs = [png] * 40 + [jpg] + [png] * 23
    before = len(server.requests)
    images = asyncio.run(read_images(refs, fetch=policy(), image=ImagePolicy(),
                                     convert=lambda im: im.size))  # fmt: skip
    assert images == [(64, 48)] * 40 + [(80, 60)] + [(64, 48)] * 23
    assert sorted(server.requests[before:]) == ["/img.jpg?dedup", "/img.png?dedup"]
    bad = [png, server.url("/missing"), png, server.url("/missing")]
    with pytest.raises(ImageFetchError, match=r"^input\[1\]: .*HTTP 404"):
        asyncio.run(read_images(bad, fetch=policy(), image=ImagePolicy()))


# -- decoding limits ------------------------------------------------------------------------------


# -- image statistics -----------------------------------------------------------------------------
