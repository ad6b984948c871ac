"""Browser origins: which may call the gateway (CORS), and refusing the others before any work.

The allowed origins are Ollama's (envconfig.AllowedOrigins): http(s) on localhost, 127.0.0.1 and
0.0.0.0 at any port, and the desktop-app schemes app://, file://, tauri://, vscode-webview://,
vscode-file://; `GATEWAY_CORS_ORIGINS` adds to them, as OLLAMA_ORIGINS does (`*` inside an
origin is a wildcard: `chrome-extension://*`; `*` alone allows every origin).

CORS headers alone do not stop a browser's "simple" request (a POST with a text/plain body
needs no preflight): the page cannot read the answer, but the work happens. So, as Ollama does,
a request whose Origin is neither allowed nor the gateway's own is refused 403 before it
reaches a route, in its path's error shape; so are preflights from such origins, and a preflight
Litestar refuses (a method or header not allowed) gets its reason in that shape too. On a
server bound to loopback, "its own" origin counts only under a local Host name (Ollama's
allowed hosts): under another, the page's name was rebound to 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import msgspec
from litestar.config.cors import CORSConfig

from gateway.api.disconnect import Receive
from gateway.api.errors import error_answer, path_family
from gateway.api.responses import Message, Scope, Send, send_json
from gateway.errors import GatewayError
from gateway.settings import Settings

# Ollama's defaults, plus [::1], the IPv6 loopback.
LOCAL_ORIGINS = (
    r"https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(:\d+)?"
    r"|(app|file|tauri|vscode-webview|vscode-file)://.*"
)


class OriginNotAllowed(GatewayError):
    status_code = 403
    code = "origin_not_allowed"


class PreflightRefused(GatewayError):
    status_code = 400
    code = "cors_preflight_refused"


def cors_config(
    settings: Settings, allow_headers: list[str], expose_headers: list[str]
) -> CORSConfig:
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_origin_regex=LOCAL_ORIGINS,
        allow_methods=["GET", "POST", "HEAD", "DELETE", "OPTIONS"],
        allow_headers=allow_headers,
        expose_headers=expose_headers,
    )


def host_name(host: str) -> str:
    """A Host header's name without its port: "[::1]:11434" -> "::1", "a.local:80" -> "a.local"."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0].lower()
    return host.rsplit(":", 1)[0].lower().rstrip(".")


def is_local_host(host: str) -> bool:
    """Ollama's allowed hosts for a loopback-bound server: a loopback or private address,
    localhost, a .localhost/.local/.internal name, or this machine's name."""
    name = host_name(host)
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return (
            name == "localhost"
            or name.endswith((".localhost", ".local", ".internal"))
            or name == socket.gethostname().lower()
        )
    return address.is_loopback or address.is_private


def _origin_and_host(scope: Scope) -> tuple[str | None, str | None]:
    origin = host = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    return origin, host


ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class OriginGate:
    """In front of Litestar's CORS handling: refuses what it would only leave unlabelled."""

    def __init__(self, app: ASGIApp, cors: CORSConfig, *, loopback_only: bool) -> None:
        self.app = app
        self.cors = cors
        # Bound to loopback, a page that calls "its own" server under a name that is not local
        # got there by DNS rebinding (evil.example resolving to 127.0.0.1): not its own.
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin, host = _origin_and_host(scope)
        if not origin:  # an empty Origin is none (gin-contrib/cors, Ollama's, reads it so)
            await self.app(scope, receive, send)
            return
        # A page's requests to the server that served it carry its own origin (/docs does).
        own = (
            host is not None
            and origin in (f"http://{host}", f"https://{host}")
            and (not self.loopback_only or is_local_host(host))
        )
        if not own and not self.cors.is_origin_allowed(origin):
            refusal = OriginNotAllowed(
                f"origin {origin!r} is not allowed; add it to GATEWAY_CORS_ORIGINS"
            )
            await self._refuse(scope, send, refusal)
        elif scope["method"] == "OPTIONS":
            await self.app(scope, receive, self._reshaped_preflight(scope, send))
        else:
            await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, error: GatewayError) -> None:
        # Before the body is read: the family is the path's.
        answer = error_answer(error, None, path_family(scope["path"]))
        await send_json(send, answer.status, msgspec.json.encode(answer.body), answer.headers)

    def _reshaped_preflight(self, scope: Scope, send: Send) -> Send:
        """Litestar answers a preflight it refuses with 400 text/plain ("Disallowed CORS
        method, headers"); the same refusal in the path's JSON shape."""
        refused = False

        async def reshaping(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 400:
                refused = True
                return
            if refused and message["type"] == "http.response.body":
                reason = bytes(message.get("body", b"")).decode("utf-8", "replace")
                await self._refuse(scope, send, PreflightRefused(reason))
                return
            await send(message)

        return reshaping


def with_origin_gate(app: object, cors: CORSConfig, *, bound_to: str) -> None:
    """Put the gate in front of `app`'s (a Litestar app's) ASGI handler; `bound_to`: the
    address the server listens on."""
    loopback = bound_to == "localhost" or _is_loopback(bound_to)
    gate = OriginGate(app.asgi_handler, cors, loopback_only=loopback)  # type: ignore[attr-defined]
    app.asgi_handler = gate  # type: ignore[attr-defined]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
