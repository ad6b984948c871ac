"""Fetch an image URL without becoming a proxy into the private network (SSRF).

For each hop (the URL, then at most `max_redirects` redirects): parse the URL and resolve its host
once to checked addresses (gateway.media.fetch_target), then connect to exactly those addresses:
httpcore runs HTTP/1.1 over a network backend that ignores the host name and dials the pinned
IPs, while TLS still verifies the certificate against (and sends SNI for) the URL's host name.
There is no second DNS lookup to rebind. This module owns that connection, the redirects, the
streaming read and the fetch's metrics. The body must be an image by both signs: a Content-Type
of image/* (application/octet-stream and a missing type are tolerated, as object stores send
them) and the magic bytes of an accepted format in its first bytes. It is read in httpcore's
chunks (64 KiB); a declared Content-Length over the cap is refused before the body is read, and a
body that grows past the cap is dropped mid-stream, so at most cap + one chunk is ever held.
Connect time is capped per address and the whole fetch, redirects included, by `total_timeout`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import certifi
import httpcore

from gateway import metrics
from gateway.errors import GatewayError
from gateway.media.decode import MEDIA_TYPES, sniff_format
from gateway.media.fetch_target import (
    FetchTarget,
    IPAddress,
    address_allowed,
    embedded_ipv4,
    non_public_reason,
    parse_target,
    resolve,
)
from gateway.media.policy import FetchPolicy, ForbiddenURL, ImageFetchError, InvalidImage

__all__ = [
    "ACCEPT",
    "REDIRECT_STATUSES",
    "TOLERATED_TYPES",
    "FetchTarget",
    "FetchedImage",
    "IPAddress",
    "address_allowed",
    "embedded_ipv4",
    "fetch_image",
    "fetch_outcome",
    "non_public_reason",
    "parse_target",
    "resolve",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TOLERATED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_SNIFF_BYTES = 16
# The formats the decoder takes, one by one: with `image/*` a negotiating server (an image CDN)
# may choose AVIF or JPEG XL, which the gateway cannot decode.
ACCEPT = ", ".join(MEDIA_TYPES.values())


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    content_type: str
    url: str  # after redirects


# -- HTTP ----------------------------------------------------------------------------------------


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials the pre-checked addresses of one host, whatever name httpcore asks for."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host = host
        self.addresses = addresses
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        if host != self.host:  # only the origin we checked, never another one
            raise httpcore.ConnectError(f"refusing to connect to unchecked host {host!r}")
        error: Exception = httpcore.ConnectError("no address")
        for address in self.addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for image URLs")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.lru_cache(maxsize=8)
def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


async def _get(
    target: FetchTarget, addresses: list[str], policy: FetchPolicy
) -> FetchedImage | str:
    """One hop: the image, or the absolute URL of a redirect."""
    timeouts = {
        "connect": policy.connect_timeout,
        # No single read may outlast the whole fetch; the total deadline (fetch_image) fires
        # first, so a slow server gets one message whatever it stalls on.
        "read": policy.total_timeout + 1,
        "write": policy.connect_timeout,
        "pool": policy.connect_timeout,
    }
    headers = [
        (b"Host", target.host_header.encode("ascii")),
        (b"User-Agent", policy.user_agent.encode("latin-1")),
        (b"Accept", ACCEPT.encode("ascii")),
        # Compressed transfer would let a small download inflate past the cap.
        (b"Accept-Encoding", b"identity"),
        (b"Connection", b"close"),
    ]
    url = httpcore.URL(
        scheme=target.scheme.encode(), host=target.host.encode(), port=target.port,
        target=target.target.encode("ascii"),
    )  # fmt: skip
    async with (
        httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(policy.ca_file),
            network_backend=_PinnedBackend(target.host, addresses),
            max_connections=1,
            retries=0,
        ) as pool,
        pool.stream("GET", url, headers=headers, extensions={"timeout": timeouts}) as response,
    ):
        status = response.status
        if status in REDIRECT_STATUSES:
            location = _header(response.headers, b"location")
            if not location:
                raise ImageFetchError(f"image URL {target.url} redirected without a Location")
            return urljoin(target.url, location)
        if status != 200:
            raise ImageFetchError(f"image URL {target.url} answered HTTP {status}")
        content_type = _header(response.headers, b"content-type")
        media_type = _media_type(content_type)
        if not media_type.startswith("image/") and media_type not in TOLERATED_TYPES:
            raise ImageFetchError(
                f"image URL {target.url} is not an image (Content-Type: {media_type})"
            )
        encoding = (_header(response.headers, b"content-encoding") or "identity").lower()
        if encoding != "identity":
            raise ImageFetchError(
                f"image URL {target.url} sent a {encoding}-encoded body; only identity is accepted"
            )
        declared = _header(response.headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
            raise ImageFetchError(
                f"image at {target.url} is {declared} bytes, more than the "
                f"{policy.max_bytes} allowed"
            )
        body = bytearray()
        async for chunk in response.aiter_stream():
            body += chunk
            if len(body) > policy.max_bytes:
                raise ImageFetchError(
                    f"image at {target.url} is larger than the {policy.max_bytes} bytes "
                    f"allowed (stopped after {len(body)})"
                )
            if len(body) >= _SNIFF_BYTES and len(body) - len(chunk) < _SNIFF_BYTES:
                _check_magic(body, target)
        _check_magic(body, target)
        return FetchedImage(bytes(body), media_type, target.url)


def _check_magic(body: bytearray, target: FetchTarget) -> None:
    if sniff_format(bytes(body[:_SNIFF_BYTES])) is None:
        raise ImageFetchError(
            f"image URL {target.url} did not return JPEG, PNG, WebP, GIF, BMP or TIFF data"
        )


async def _fetch(url: str, policy: FetchPolicy) -> FetchedImage:
    for _hop in range(policy.max_redirects + 1):
        target = parse_target(url, policy)
        addresses = await resolve(target, policy)
        try:
            result = await _get(target, addresses, policy)
        except httpcore.TimeoutException:
            raise ImageFetchError(f"image URL {target.url} timed out") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
                ssl.SSLError, OSError) as exc:  # fmt: skip
            raise ImageFetchError(f"cannot fetch image URL {target.url}: {exc}") from None
        if isinstance(result, FetchedImage):
            return result
        url = result
    raise ImageFetchError(
        f"image URL redirected more than {policy.max_redirects} times (last: {url})"
    )


async def fetch_image(url: str, policy: FetchPolicy) -> FetchedImage:
    """GET an image URL under `policy`; every failure is a 400-class GatewayError."""
    if not policy.enabled:
        raise InvalidImage("this gateway does not fetch image URLs; send the image as base64")
    try:
        fetched = await asyncio.wait_for(_fetch(url, policy), timeout=policy.total_timeout)
    except GatewayError as exc:
        metrics.image_fetched(fetch_outcome(exc))
        raise
    except TimeoutError:
        metrics.image_fetched("timeout")
        raise ImageFetchError(
            f"fetching image URL {url} took longer than {policy.total_timeout:g}s"
        ) from None
    metrics.image_fetched("ok")
    return fetched


def fetch_outcome(error: GatewayError) -> str:
    """The `outcome` label of a failed fetch."""
    if isinstance(error, ForbiddenURL):
        return "refused"
    if isinstance(error, InvalidImage):
        return "invalid"
    return "timeout" if "timed out" in error.message else "error"
