"""A real HTTP(S) server on a loopback address, serving images and misbehaving on purpose.

Routes (GET):
  /img.png /img.jpg           an image with its type
  /octet.png /untyped.png     the PNG as application/octet-stream, and with no Content-Type
  /page.html                  an HTML page (text/html)
  /fake.png                   HTML sent as image/png
  /missing                    404
  /gzip.png                   the PNG with Content-Encoding: gzip
  /negotiated                 an image CDN's format negotiation: AVIF when the Accept header
                              allows it (image/avif, image/* or */*), else the PNG
  /declared-huge              Content-Length of 1 GiB, then a 2 s pause before any body byte
  /endless                    a PNG signature, then zero bytes as fast as the client reads
                              (no Content-Length, ends when the connection closes or at 256 MiB)
  /slow                       a PNG signature, then one byte every 0.1 s for 30 s
  /stall                      headers never come (60 s)
  /hop/N                      302 to /hop/N-1 (relative Location); /hop/0 is the PNG
  /to?u=URL                   302 to URL

Every request and every body byte written is recorded, so tests can assert what the server
did (e.g. that a refused destination was never contacted, or how much of a body went out).
"""

from __future__ import annotations

import contextlib
import gzip
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ENDLESS_LIMIT = 256 * 1024 * 1024
CHUNK = 64 * 1024
# /declared-huge waits this long before its first body byte: a refusal sooner read no body.
DECLARED_PAUSE = 20.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The start of an AVIF file (ISO BMFF `ftyp` box, brand avif): a format the gateway cannot decode.
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64)


class ImageServer:
    """`with ImageServer(png, jpeg) as server: server.url("/img.png")`."""

    def __init__(
        self,
        png: bytes,
        jpeg: bytes,
        *,
        host: str = "127.0.0.1",
        certificate: Path | None = None,
        key: Path | None = None,
    ) -> None:
        self.png = png
        self.jpeg = jpeg
        self.host = host
        self.requests: list[str] = []
        self.sent: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer((host, 0), _handler(self))
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str, *, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def record(self, path: str, sent: int) -> None:
        with self.lock:
            self.sent[path] = self.sent.get(path, 0) + sent

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()  # slow handlers notice and return
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: ImageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            with server.lock:
                server.requests.append(self.path)
            # The client hanging up mid-body is what several tests want.
            with contextlib.suppress(OSError):  # BrokenPipe, ConnectionReset, SSL errors
                self.route()

        def reply(self, body: bytes, content_type: str | None, **headers: str) -> None:
            self.send_response(200)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)
            server.record(self.path, len(body))

        def redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def route(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            if path == "/img.png":
                self.reply(server.png, "image/png")
            elif path == "/img.jpg":
                self.reply(server.jpeg, "image/jpeg; charset=binary")
            elif path == "/octet.png":
                self.reply(server.png, "application/octet-stream")
            elif path == "/untyped.png":
                self.reply(server.png, None)
            elif path == "/page.html":
                self.reply(b"<html><body>not an image</body></html>", "text/html")
            elif path == "/fake.png":
                self.reply(b"<html><body>not an image</body></html>" * 4, "image/png")
            elif path == "/gzip.png":
                self.reply(gzip.compress(server.png), "image/png", Content_Encoding="gzip")
            elif path == "/negotiated":
                accept = [
                    part.split(";")[0].strip() for part in self.headers.get("Accept", "").split(",")
                ]
                if {"image/avif", "image/*", "*/*"} & set(accept):
                    self.reply(AVIF, "image/avif", Vary="Accept")
                else:
                    self.reply(server.png, "image/png", Vary="Accept")
            elif path == "/missing":
                self.send_error(404)
            elif path == "/declared-huge":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(1024**3))
                self.end_headers()
                self.wfile.flush()
                server.stop.wait(DECLARED_PAUSE)
                self.stream(ENDLESS_LIMIT)
            elif path == "/endless":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()  # no length: the body ends when the connection closes
                self.stream(ENDLESS_LIMIT)
            elif path == "/slow":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                self.wfile.write(PNG_SIGNATURE)
                self.wfile.flush()
                for _ in range(300):
                    if server.stop.wait(0.1):
                        return
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
                    server.record(self.path, 1)
            elif path == "/stall":
                server.stop.wait(60)
            elif path.startswith("/hop/"):
                left = int(path.rsplit("/", 1)[1])
                if left == 0:
                    self.reply(server.png, "image/png")
                else:
                    self.redirect(f"{left - 1}")  # relative to /hop/
            elif path == "/to":
                self.redirect(parse_qs(parts.query)["u"][0])
            else:
                self.send_error(404)

        def stream(self, limit: int) -> None:
            self.wfile.write(PNG_SIGNATURE)
            chunk = bytes(CHUNK)
            sent = 0
            started = time.monotonic()
            while sent < limit and time.monotonic() - started < 30 and not server.stop.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
                server.record(self.path, len(chunk))

    return Handler
