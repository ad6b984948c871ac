"""A small client for a running gateway, on the standard library (no HTTP package needed)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import IO, Any

_TIMEOUT = 600.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RemoteError(RuntimeError):
    """The server answered with an error, or could not be reached; the message says which."""


def _error_message(body: bytes, status: int) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):  # OpenAI's shape
        error = error.get("message")
    return str(error) if error else f"HTTP {status}"


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None


def _key_may_follow(old_url: str, new_url: str) -> bool:
    """The same origin, or the same host moving from http:80 to https:443 (as requests allows)."""
    old, new = _origin(old_url), _origin(new_url)
    if old is None or new is None:
        return False
    upgrade = old == ("http", new[1], 80) and new[::2] == ("https", 443)
    return old == new or upgrade


class _KeyKeepingRedirects(urllib.request.HTTPRedirectHandler):
    """urllib copies every header onto a redirect, Authorization included, to whatever host the
    Location names: the key would go to a host the user never named. It is kept only for the
    origin it was sent to; once dropped, later hops never have it."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not _key_may_follow(req.full_url, new.full_url):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_KeyKeepingRedirects)


class Remote:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = _TIMEOUT) -> None:
        self.url = url.rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        try:  # a malformed URL ("http://[::1") fails here, as one line, not in urllib later
            parts = urllib.parse.urlsplit(self.url)
            parts.port  # noqa: B018 (reading it validates it)
        except ValueError as exc:
            raise RemoteError(f"{url}: not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"{url}: not a valid URL (expected http://host:port)")
        self.api_key = api_key
        self.timeout = timeout

    def _open(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json", "User-Agent": "gateway-cli"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            return _OPENER.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise RemoteError(_error_message(exc.read(), exc.code)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if data is not None and isinstance(reason, (BrokenPipeError, ConnectionResetError)):
                # The server answered (413) and closed before reading the whole body; urllib
                # only sees the broken connection.
                raise RemoteError(
                    f"the gateway at {self.url} closed the connection while a "
                    f"{len(data) / 1e6:.1f} MB request was being sent: a body over the server's "
                    "limit (GATEWAY_MAX_BODY_BYTES) is refused so; send fewer inputs per request"
                ) from None
            raise RemoteError(f"cannot reach the gateway at {self.url}: {reason}") from None

    def not_gateway(self, what: str) -> RemoteError:
        """A wrong port, a proxy's HTML page, a captive portal: one line, not a traceback."""
        return RemoteError(f"{self.url} did not answer as a gateway ({what})")

    def _json(self, raw: bytes, path: str) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise self.not_gateway(f"{path}: not JSON") from None

    def get(self, path: str) -> Any:
        with self._open("GET", path) as response:
            return self._json(response.read(), path)

    def post(self, path: str, body: Any) -> Any:
        with self._open("POST", path, body) as response:
            return self._json(response.read(), path)

    def fields(self, answer: Any, path: str, *names: str) -> dict[str, Any]:
        """`answer` as an object that has every one of `names`."""
        if not isinstance(answer, dict):
            raise self.not_gateway(f"{path}: not a JSON object")
        missing = [name for name in names if name not in answer]
        if missing:
            raise self.not_gateway(f"{path}: no {', '.join(map(repr, missing))}")
        return answer

    def rows(self, path: str, *names: str) -> list[dict[str, Any]]:
        """GET `path`'s "models" list, each row an object with every one of `names`."""
        rows = self.fields(self.get(path), path, "models")["models"]
        if not isinstance(rows, list):
            raise self.not_gateway(f"{path}: 'models' is not a list")
        return [self.fields(row, path, *names) for row in rows]

    def delete(self, path: str, body: Any) -> None:
        with self._open("DELETE", path, body) as response:
            response.read()

    def stream(self, path: str, body: Any) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON line; an `{"error": ...}` line raises."""
        with self._open("POST", path, body) as response:
            for line in response:
                if not line.strip():
                    continue
                event = self._json(line, path)
                if not isinstance(event, dict):
                    raise self.not_gateway(f"{path}: not JSON objects")
                if "error" in event:
                    raise RemoteError(str(event["error"]))
                yield event
