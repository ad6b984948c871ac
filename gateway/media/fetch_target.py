"""Where an image fetch may go: URL parsing and policy-checked address resolution (SSRF guard).

This module owns the first two steps of each hop of gateway.media.fetch: parsing the URL
ourselves into a `FetchTarget` (http/https only, no credentials, IDNA 2008 host), and resolving
its host once, where every address it resolves to must be public unicast (IPv4 embedded in IPv6
included) unless the host or the address is allow-listed; one bad address refuses the URL, so
there are no "public + private" tricks. A destination the allow-list does not open must also use
one of the policy's ports (80, 443, 8080, 8443 by default), so a URL naming the gateway host's
own public address cannot reach its other services. The checked addresses it returns are
the only ones the fetch then dials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from gateway.logs import loggable
from gateway.media.policy import (
    FetchPolicy,
    ForbiddenURL,
    ImageFetchError,
    InvalidImage,
    ascii_host,
)

# Log lines keep the logger name they had before this module was split out of the fetcher.
log = logging.getLogger("gateway.media.fetch")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class FetchTarget:
    """One hop of a fetch, parsed: the URL and the parts its request is built from."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA 2008), lower case, no brackets
    port: int
    target: str  # path and query, percent-encoded

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if _DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"


# -- addresses -------------------------------------------------------------------------------


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def non_public_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address (None when it is one)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped (link-local)"
        inner = embedded_ipv4(ip)
        if inner is not None:
            reason = non_public_reason(inner)
            if reason is not None:
                return f"{reason} (embedded in IPv6)"
            if ip.ipv4_mapped is not None:
                return None
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("private", ip.is_private),
        ("non-global", not ip.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None


def address_opened(ip: IPAddress, policy: FetchPolicy) -> bool:
    """Whether the allow-list's networks hold `ip` (as written, or the IPv4 it maps)."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(
        c.version == network.version and c in network
        for network in policy.allow_networks
        for c in candidates
    )


def address_allowed(ip: IPAddress, policy: FetchPolicy) -> bool:
    return address_opened(ip, policy) or non_public_reason(ip) is None


def loggable_url(url: str) -> str:
    """`url` for a log line: no query or fragment (a presigned URL's signature, a token), and
    escaped like any other text from a request."""
    return loggable(url.split("#", 1)[0].split("?", 1)[0])


async def resolve(target: FetchTarget, policy: FetchPolicy) -> list[str]:
    """The checked addresses to dial for `target` (one DNS lookup, never repeated)."""
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(target.host)]
        literal = True
    except ValueError:
        literal = False
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError) as exc:
            raise ImageFetchError(f"cannot resolve image URL host '{target.host}': {exc}") from None
        addresses = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise ImageFetchError(f"image URL host '{target.host}' has no address")
    if not policy.host_allowed(target.host):
        for address in addresses:
            if address_allowed(address, policy):
                continue
            reason = non_public_reason(address) or "not allowed"
            # Without the query: a signed URL's signature there is a credential.
            log.info("refused image URL %s: %s resolves to %s (%s)", loggable_url(target.url),
                     target.host, address, reason)  # fmt: skip
            # Name the address only when the client wrote it: resolving internal names for
            # strangers would leak the network's layout.
            where = (
                f"{address} is a {reason} address"
                if literal
                else ("it resolves to a private, loopback or otherwise non-public address")
            )
            raise ForbiddenURL(
                f"image URL host '{target.host}' is not allowed: {where}; only public "
                "addresses can be fetched unless the gateway's allow-list opens them"
            )
    ports = policy.allowed_ports
    if (
        ports is not None
        and target.port not in ports
        and not policy.host_allowed(target.host)
        and not all(address_opened(address, policy) for address in addresses)
    ):
        raise ForbiddenURL(
            f"image URL port {target.port} is not allowed for a public host: only "
            f"{', '.join(map(str, sorted(ports)))} (GATEWAY_IMAGE_ALLOW_PORTS); hosts and "
            "networks on the gateway's allow-list may use any port"
        )
    return [str(address) for address in addresses]


# -- URLs --------------------------------------------------------------------------------------


def parse_target(url: str, policy: FetchPolicy) -> FetchTarget:
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidImage("image URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidImage(f"malformed image URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidImage(f"image URL scheme must be http or https, not {scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidImage("image URLs must not carry credentials (user:password@)")
    if not parts.hostname:
        raise InvalidImage("image URL has no host")
    try:
        host = ascii_host(parts.hostname)
    except ValueError as exc:
        raise InvalidImage(
            f"image URL host {parts.hostname!r} is not a valid name: {exc}"
        ) from None
    if port == 0:  # urlsplit reads ":0" as 0, which `port or default` would turn into 80/443
        raise InvalidImage("malformed image URL: port 0 is not a port a server listens on")
    port = _DEFAULT_PORTS[scheme] if port is None else port
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?") if parts.query else ""
    return FetchTarget(url, scheme, host, port, path + ("?" + query if query else ""))
