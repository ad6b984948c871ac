"""uvicorn's httptools protocol with the limits an exposed port needs.

uvicorn arms no timer until a first response is complete, so a connection whose request line or
headers never finish (slowloris), or that sends nothing at all, is held forever, and httptools
puts no bound on header size. This protocol adds these bounds (and answers a request httptools
cannot parse with a JSON 400, where uvicorn writes text):
- headers must be complete within `header_timeout` of the connection or of the request's first
  byte, else the server answers 408 and closes;
- while a request body is being read, `read_timeout` may pass without a byte, no more;
- request line plus headers may not exceed `max_header_bytes` (431), counted as bytes arrive,
  not only as httptools hands over complete headers;
- a body in a transfer coding besides chunked (`gzip, chunked`) is refused with 501 (RFC 9112
  6.1), where httptools would undo the chunked framing alone and hand the rest on as the body;
- an HTTP/1.0 request with Transfer-Encoding is refused with 400 and the connection closed (RFC
  9112 6.1: its framing is faulty), where httptools would read it as chunked;
- a response the client leaves unread (writing paused by flow control) for `write_timeout`
  drops the connection;
- between requests, only a request's first byte stops the idle timeout (uvicorn's keep-alive
  timer), not bytes that start none, such as the bare CRLFs the parser skips.
A request line whose method the parser does not know (BREW) is a 501, not a 400 (RFC 9110 9.1).
The refusals (gateway/connection_answers.py) are JSON in the family's error shape, as every other
error (by path, when the request line arrived); so is the 503 uvicorn answers beyond the
connection cap (`limit_concurrency`), with Retry-After.
An Upgrade header (h2c, which `curl --http2` sends on http://; WebSocket, as the server serves
none) is ignored and the request served over HTTP/1.1, where uvicorn would drop its body.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gateway.connection_answers import (
    HEADER_TIMEOUT,
    HEADERS_TOO_LARGE,
    MALFORMED,
    Refusal,
    faulty_framing,
    over_capacity,
    refusal,
    transfer_codings,
    unknown_method,
    unsupported_transfer_coding,
)

log = logging.getLogger(__name__)
# A request line: a method token, a target and the version (RFC 9112 3).
_REQUEST_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/\d\.\d\r?$", re.M)


def unknown_method_line(data: bytes) -> tuple[str, str] | None:
    """(method, path) of the first request line in `data` whose method httptools does not know;
    None when no such line is there (a TLS hello, say: not HTTP at all, a 400). A throwaway
    parser judges each line, so a request before it on the connection is passed over."""
    for line in _REQUEST_LINE.finditer(data):
        try:
            httptools.HttpRequestParser(object()).feed_data(line.group(0) + b"\n")
        except httptools.HttpParserInvalidMethodError:
            path = line.group(2).split(b"?", 1)[0].decode("latin-1")
            return line.group(1).decode("latin-1"), path
        except httptools.HttpParserError:
            continue
    return None


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    read_timeout: float
    write_timeout: float
    max_header_bytes: int


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Set `limits` on a subclass (see `bounded_protocol`); uvicorn builds one per connection."""

    limits: ConnectionLimits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self._write_stall: asyncio.TimerHandle | None = None
        self._header_bytes = 0  # request line and headers, as the parser hands them over
        self._head_received = 0  # bytes of whole chunks that arrived mid-head (see data_received)
        self._chunk_in_head = 0
        self._reading_headers = True
        self._refused = False
        self._upgrade_ignored = False
        super().connection_made(transport)
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._writable()
        super().connection_lost(exc)

    # Flow control: the transport's buffer is over its high-water mark (or back under the low).
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_stall is None:
            # uvicorn's send() waits for the drain without a limit, and a response already
            # buffered whole waits for ever too (close() flushes first): a bound on the stall.
            self._write_stall = self.loop.call_later(self.limits.write_timeout, self._write_expired)

    def resume_writing(self) -> None:
        self._writable()
        super().resume_writing()

    def _writable(self) -> None:
        if self._write_stall is not None:
            self._write_stall.cancel()
            self._write_stall = None

    def _write_expired(self) -> None:
        self._write_stall = None
        host, port = self.client or ("?", 0)
        log.warning(
            "dropped %s:%d: its answer went unread for %gs (write timeout)",
            host,
            port,
            self.limits.write_timeout,
        )
        # A reset: close() would wait for the buffer to drain, which is the stall, and even a
        # closed socket's unsent bytes stay in the kernel (FIN-WAIT-1) until they are read.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        # httptools hands a header over only once it ends, growing (copying) a partial one
        # without bound, so the bytes are counted as they come too. A chunk in which a request
        # begins is left out (on_message_begin zeroes this): part of it may be the previous
        # request's, and counting it could refuse a head under the limit.
        reading = self._reading_headers
        self._chunk_in_head = len(data) if reading else 0
        if not reading and self.cycle is not None and self.cycle.more_body:
            self._arm(self.limits.read_timeout)  # idle time between body chunks
        self._feed(data)
        if self._chunk_in_head and self._reading_headers and not self._refused:
            self._head_received += self._chunk_in_head
            if self._head_received > self.limits.max_header_bytes:
                self._refuse(HEADERS_TOO_LARGE)

    def _feed(self, data: bytes) -> None:
        """uvicorn's data_received, less two things. It cancels the idle (keep-alive) timer on any
        byte; here only a request's start does (on_message_begin), so bytes that start none (the
        bare CRLFs the parser skips) cannot keep a connection open. And it drops the rest of a
        request with an Upgrade it does not serve; here the request is served (RFC 9110 7.8)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._upgrade_ignored:
                self._feed_without_upgrade(memoryview(data)[upgrade.args[0] :])
            # else a CONNECT: the app answers it, and the parser stops here, as uvicorn's does
        except httptools.HttpParserInvalidMethodError:
            self._invalid_method(data)
        except httptools.HttpParserError:
            self._invalid_http()

    def _feed_without_upgrade(self, rest: memoryview) -> None:
        """httptools stops at the end of an Upgrade request's head, skipping its body, and will
        not go on: a fresh parser takes the head again without its Upgrade header, then `rest`
        (the body and whatever follows). A loop, not recursion: one piece may hold many."""
        pending: list[bytes | memoryview] = [rest, self._restart_parser()]
        while pending:
            piece = pending.pop()
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade as upgrade:
                if not self._upgrade_ignored:
                    return  # a CONNECT, as in _feed
                pending += (memoryview(piece)[upgrade.args[0] :], self._restart_parser())
            except httptools.HttpParserInvalidMethodError:
                self._invalid_method(bytes(piece))
                return
            except httptools.HttpParserError:
                self._invalid_http()
                return

    def _restart_parser(self) -> bytes:
        """A fresh parser; returns the head the old one stopped after, less Upgrade, to feed it."""
        self._upgrade_ignored = False
        version = self.parser.get_http_version().encode()
        head = [self.parser.get_method(), b" ", self.url, b" HTTP/", version, b"\r\n"]
        for name, value in self.headers:
            if name != b"upgrade":
                head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn's
        return b"".join(head)

    def _invalid_method(self, data: bytes) -> None:
        """501 for a request line with a method nobody defined (BREW), 400 for bytes that are
        no request line at all."""
        found = unknown_method_line(data)
        if found is None:
            self._invalid_http()
        elif not self._refused:
            self._refuse(unknown_method(found[0]), path=found[1])

    def _invalid_http(self) -> None:
        self.logger.warning("Invalid HTTP request received.")
        self.send_400_response("Invalid HTTP request received.")

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # Beyond limit_concurrency uvicorn runs its own 503 app (text/plain, no Retry-After).
        super()._start_asgi_task(cycle, over_capacity if app is service_unavailable else app)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = self._head_received = self._chunk_in_head = 0
        self._unset_keepalive_if_required()
        self._reading_headers = True
        if self._deadline is None:  # a keep-alive connection's next request: a fresh deadline
            self._arm(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        # Kept first, so a refusal of this very piece still knows the path (and its family).
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        if refused := faulty_framing(version, self.headers) or unsupported_transfer_coding(
            transfer_codings(self.headers)
        ):
            self._refuse(refused)
            raise ValueError("refused framing")  # stops the parser, as in _count
        if self.parser.should_upgrade() and self.parser.get_method() != b"CONNECT":
            self._upgrade_ignored = True  # parsed again without it when the parser stops (_feed)
            return
        self._reading_headers = False
        self._disarm()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._arm(self.limits.read_timeout)

    def on_message_complete(self) -> None:
        if self._upgrade_ignored:  # the head only; the request is parsed again
            return
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes httptools cannot parse, in JSON instead of its text."""
        if not self._refused:  # our own refusal already answered; the parser only stopped
            self._refuse(MALFORMED)

    # Limits
    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse(HEADERS_TOO_LARGE)
            # Stops the parser; uvicorn would answer 400, which send_400_response now skips.
            raise ValueError("request headers too large")

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._reading_headers:
            self._refuse(HEADER_TIMEOUT)
        else:  # mid-body: the handler sees a disconnect and stops
            self.transport.close()

    def _refuse(self, answer: Refusal, path: str | None = None) -> None:
        """Answer `answer` in the family of `path` (by default the request's, as parsed)."""
        self._refused = True
        self._disarm()
        if path is None:
            # uvicorn starts `url` empty at each request's first byte; before that it is unset.
            path = getattr(self, "url", b"").split(b"?", 1)[0].decode("latin-1")
        self.transport.write(refusal(answer, path))
        self.transport.close()


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedHttpToolsProtocol]:
    """A protocol class carrying `limits`, for uvicorn's `http=` option."""
    attributes: dict[str, Any] = {"limits": limits}
    return type("GatewayHttpProtocol", (BoundedHttpToolsProtocol,), attributes)
