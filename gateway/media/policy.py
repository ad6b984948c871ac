"""Limits for image inputs, and the errors a client sees when an input breaks them.

The knobs live in two frozen dataclasses with safe defaults; settings.py builds them from the
environment. Every refusal is a 400-class GatewayError with a message that says what was wrong.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import idna

from gateway.errors import InvalidRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MiB = 1024 * 1024


class InvalidImage(InvalidRequest):
    """The input is not an image we can decode (bad reference, format, size or content)."""

    code = "invalid_image"

    def __init__(self, message: str, *, param: str | None = "input") -> None:
        super().__init__(message, param=param)


class ImageFetchError(InvalidRequest):
    """An image URL could not be fetched: network error, HTTP error, timeout, size cap."""

    code = "image_fetch_failed"

    def __init__(self, message: str, *, param: str | None = "input") -> None:
        super().__init__(message, param=param)


class ForbiddenURL(ImageFetchError):
    """The URL points somewhere the gateway must not connect to (private, loopback, ...)."""

    code = "image_url_forbidden"


def ascii_host(name: str) -> str:
    """A host name as it goes on the wire: lower case, internationalized labels in IDNA 2008
    (UTS #46, non-transitional) form as browsers use it, so "straße.de" is xn--strae-oqa.de and
    not strasse.de (Python's "idna" codec is IDNA 2003). Raises ValueError naming what is wrong."""
    if name.isascii():
        labels = name.rstrip(".").split(".")
        if not all(0 < len(label) <= 63 for label in labels):
            raise ValueError("a label is empty or longer than 63 characters")
        return name.lower()  # already the wire form; IDNA 2008 would refuse e.g. underscores
    try:
        return idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class ImagePolicy:
    """What the decoder accepts."""

    # Decoded pixels (width x height of the first frame); a 50 MP RGB image is 150 MB.
    max_pixels: int = 50_000_000
    # Encoded bytes, whether inline (base64) or fetched.
    max_bytes: int = 20 * MiB
    # Pillow decoder names (camera MPO files open through the JPEG one).
    formats: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
    # Scans (SOS segments) in a JPEG: libjpeg walks every block of the image once per scan, so
    # a progressive file of a few KB with thousands of empty scans costs minutes of CPU.
    # Encoders write 1 (baseline) to about 10-20 (progressive); 100 bounds the worst case at a
    # few times an ordinary decode (libtiff refuses JPEG-in-TIFF strips past 100 scans too).
    max_jpeg_scans: int = 100

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_bytes < 1 or self.max_jpeg_scans < 1:
            raise ValueError("max_pixels, max_bytes and max_jpeg_scans must be positive")


@dataclass(frozen=True)
class FetchPolicy:
    """Where and how image URLs may be fetched.

    By default only public unicast addresses are reachable. `allow_hosts` (exact host names,
    case-insensitive, in Unicode or IDNA form) and `allow_networks` (CIDR) open specific
    destinations, e.g. an internal image store; an allowed host name may resolve to any address.
    """

    enabled: bool = True
    max_bytes: int = 20 * MiB
    connect_timeout: float = 5.0
    # The whole fetch, redirects included: DNS, connect, headers and body.
    total_timeout: float = 20.0
    max_redirects: int = 3
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    # Extra CA bundle (PEM) trusted for https, e.g. an internal CA; the system/certifi CAs
    # are used when None.
    ca_file: str | None = None
    user_agent: str = "embedding-gateway/0.1 (image fetch)"
    # How many URLs of one request are fetched at the same time.
    concurrency: int = 4
    # Ports a URL may use when the allow-list does not open its destination (the allow-list's
    # hosts and networks may use any port); None: any port.
    allowed_ports: frozenset[int] | None = frozenset({80, 443, 8080, 8443})
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.connect_timeout <= 0 or self.total_timeout <= 0:
            raise ValueError("max_bytes and the timeouts must be positive")
        if self.max_redirects < 0 or self.concurrency < 1:
            raise ValueError("max_redirects must be >= 0 and concurrency >= 1")
        hosts: set[str] = set()
        for host in self.allow_hosts:
            try:
                hosts.add(ascii_host(host.strip()))
            except ValueError as exc:
                message = f"allow-listed host {host!r} is not a valid host name: {exc}"
                raise ValueError(message) from None
        object.__setattr__(self, "_hosts", frozenset(hosts))

    @classmethod
    def with_allow_list(cls, entries: Iterable[str], **kwargs: object) -> FetchPolicy:
        """Split "host" and "CIDR" entries (as an env list gives them) into the two fields."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower())
        return cls(allow_hosts=frozenset(hosts), allow_networks=tuple(networks), **kwargs)  # type: ignore[arg-type]

    def host_allowed(self, host: str) -> bool:
        try:
            return ascii_host(host) in self._hosts
        except ValueError:
            return False
