"""A local stand-in for the Hugging Face Hub's file endpoints, for `HF_ENDPOINT=...` tests.

It serves what `huggingface_hub.hf_hub_download` (2.x) asks of the Hub, as the Hub answers it:

- `HEAD /{org}/{repo}/resolve/{revision}/{path}` (revision URL-quoted, so `refs/pr/1` arrives as
  `refs%2Fpr%2F1`). The client follows redirects itself and only those to the same origin.
  - A regular (git) file: 307 to `/api/resolve-cache/models/{org}/{repo}/{commit}/{path}`, which
    answers 200 with `X-Repo-Commit`, `ETag` (the git blob sha1) and `Content-Length`.
  - An LFS file (`*.onnx`, `*.safetensors`, ...): 302 to a CDN on another origin, the metadata on
    the redirect itself: `X-Repo-Commit`, `X-Linked-Etag` (the sha256) and `X-Linked-Size`.
    No `X-Xet-Hash` header is sent, so the client takes the plain HTTP path rather than Xet.
- `GET` on that final location (the resolve-cache URL or the CDN URL), with `Range: bytes=N-`
  for resumed downloads (206 + `Content-Range`). `GET .../resolve/...` redirects the same way.
  `interrupt_next_download` hangs up mid-body once, to make a client resume.
- Failures carry the Hub's `X-Error-Code` / `X-Error-Message`, which huggingface_hub turns into
  typed errors: `RepoNotFound` (401 without a token, 404 with one, as the Hub does for private or
  missing repositories), `RevisionNotFound` (404), `EntryNotFound` (404, with `X-Repo-Commit`).
- `GET /api/agent-harnesses`: huggingface_hub fetches this list (best effort, cached for a day)
  to describe the calling tool in its User-Agent; an empty list is served.
- A private repository wants `Authorization: Bearer <token>` on the Hub origin; the CDN never
  needs it, and the request log shows whether a client leaked it there.

Every request is recorded (`LocalHub.requests`) so tests can assert which revision was asked for
and whether a file was downloaded again.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

# The patterns of the Hub's default .gitattributes that matter for embedding models.
LFS_PATTERNS = ("*.onnx", "*.onnx_data", "*.bin", "*.safetensors", "*.pt", "*.h5", "*.msgpack")


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content: what the Hub sends as the ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Commit:
    sha: str
    files: Mapping[str, bytes]


@dataclass
class Repo:
    repo_id: str
    token: str | None = None
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        sha = self.refs.get(revision, revision)
        return self.commits.get(sha)


@dataclass(frozen=True)
class HubRequest:
    """One request the hub (or its CDN) answered."""

    origin: str  # "hub" or "cdn"
    method: str
    path: str
    status: int
    headers: Mapping[str, str]  # lower-cased names
    repo_id: str | None = None
    revision: str | None = None  # as the client sent it (a branch, tag or commit)
    filename: str | None = None  # the path in the repo; on the CDN, the name its URL carries
    sent_bytes: int = 0

    @property
    def is_download(self) -> bool:
        """A response that carried file content."""
        return self.method == "GET" and self.status in (200, 206) and self.sent_bytes > 0


class LocalHub:
    """`with LocalHub() as hub:`, then `hub.commit("org/repo", {...})`; point clients at it with
    `HF_ENDPOINT=hub.endpoint`."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self._requests: list[HubRequest] = []
        self._lock = threading.Lock()
        self._blobs: dict[str, tuple[bytes, str]] = {}  # sha256 -> (content, file name)
        self._interruptions: dict[str, int] = {}  # file name -> bytes to send before hanging up
        self._stalls: dict[str, int] = {}  # file name -> bytes to send before going silent
        self.released = threading.Event()  # ends every stall (set at exit)
        self._hub = _Server(self, "hub")
        self._cdn = _Server(self, "cdn")
        self.endpoint = f"http://127.0.0.1:{self._hub.server_port}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_port}"

    # -- content ------------------------------------------------------------------------------

    def create_repo(self, repo_id: str, *, token: str | None = None) -> Repo:
        """An empty repository; with `token`, a private one that wants that bearer token."""
        if repo_id.count("/") != 1:
            raise ValueError("repo_id must be org/name")
        repo = self.repos[repo_id] = Repo(repo_id, token=token)
        return repo

    def commit(
        self, repo_id: str, files: Mapping[str, bytes | Path], *, branch: str = "main"
    ) -> str:
        """Add or replace files on `branch` (creating the repo if needed); returns the commit."""
        repo = self.repos.get(repo_id) or self.create_repo(repo_id)
        parent = repo.resolve(branch)
        content = dict(parent.files) if parent is not None else {}
        for path, data in files.items():
            content[path] = data.read_bytes() if isinstance(data, Path) else data
        tree = "".join(f"{p}\0{git_blob_sha1(d)}\n" for p, d in sorted(content.items()))
        sha = hashlib.sha1(f"{parent.sha if parent else ''}\n{tree}".encode()).hexdigest()
        with self._lock:
            repo.commits[sha] = Commit(sha, content)
            repo.refs[branch] = sha
            for path, data in content.items():
                if is_lfs(path):
                    self._blobs[hashlib.sha256(data).hexdigest()] = (data, path.rsplit("/", 1)[-1])
        return sha

    def tag(self, repo_id: str, name: str, sha: str) -> None:
        self.repos[repo_id].refs[name] = sha

    def interrupt_next_download(self, filename: str, after_bytes: int) -> None:
        """Drop the connection of the next full download of `filename` after `after_bytes`
        (a flaky network); the client is expected to resume with a Range request."""
        with self._lock:
            self._interruptions[filename] = after_bytes

    def _take_interruption(self, filename: str | None) -> int | None:
        with self._lock:
            return self._interruptions.pop(filename or "", None)

    def stall_next_download(self, filename: str, after_bytes: int) -> None:
        """Send `after_bytes` of the next full download of `filename`, then nothing until the
        hub closes: a pull that hangs there can be killed half-way, as a user's Ctrl-C or an
        OOM kill would stop it."""
        with self._lock:
            self._stalls[filename] = after_bytes

    def _take_stall(self, filename: str | None) -> int | None:
        with self._lock:
            return self._stalls.pop(filename or "", None)

    # -- request log --------------------------------------------------------------------------

    @property
    def requests(self) -> list[HubRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def downloads(self, filename: str | None = None) -> list[HubRequest]:
        """Responses that carried file content (optionally of one file)."""
        return [
            r
            for r in self.requests
            if r.is_download and (filename is None or r.filename == filename)
        ]

    def _record(self, request: HubRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> LocalHub:
        for server in (self._hub, self._cdn):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.released.set()
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()


def is_lfs(path: str) -> bool:
    return any(fnmatch(path.rsplit("/", 1)[-1], pattern) for pattern in LFS_PATTERNS)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: LocalHub, origin: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.origin = origin


@dataclass
class _Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # idle keep-alive connections close instead of holding a thread

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    # -- dispatch -----------------------------------------------------------------------------

    def _answer(self, *, head: bool) -> None:
        hub = self.server.hub
        reply = self._cdn() if self.server.origin == "cdn" else self._hub()
        body = b"" if head else reply.body
        cut = hub._take_interruption(reply.filename) if body and reply.status == 200 else None
        stall = hub._take_stall(reply.filename) if body and reply.status == 200 else None
        if cut is not None:
            body = body[:cut]
        elif stall is not None:
            body = body[:stall]
        # Recorded before answering: once a client has its answer, the log already shows it.
        hub._record(
            HubRequest(
                origin=self.server.origin,
                method=self.command,
                path=self.path,
                status=reply.status,
                headers={k.lower(): v for k, v in self.headers.items()},
                repo_id=reply.repo_id,
                revision=reply.revision,
                filename=reply.filename,
                sent_bytes=len(body),
            )
        )
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        if stall is not None:  # go silent mid-body until the hub closes
            self.wfile.flush()
            hub.released.wait()
            self.close_connection = True
            return
        if cut is not None:  # hang up mid-body: Content-Length promised more
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _hub(self) -> _Reply:
        path = urlsplit(self.path).path
        parts = path.split("/")
        # /{org}/{name}/resolve/{revision}/{file...}
        if len(parts) >= 6 and parts[3] == "resolve":
            repo_id = f"{unquote(parts[1])}/{unquote(parts[2])}"
            return self._resolve(repo_id, unquote(parts[4]), unquote("/".join(parts[5:])))
        # /api/resolve-cache/models/{org}/{name}/{commit}/{file...}
        if len(parts) >= 8 and parts[1:4] == ["api", "resolve-cache", "models"]:
            repo_id = f"{unquote(parts[4])}/{unquote(parts[5])}"
            return self._resolve_cache(repo_id, unquote(parts[6]), unquote("/".join(parts[7:])))
        if path == "/api/agent-harnesses":
            body = b'{"standardEnvVars":[],"harnesses":{}}'
            return _Reply(200, {"Content-Type": "application/json"}, body)
        return _Reply(404, {"Content-Type": "text/plain"}, b"Not Found")

    # -- the Hub's answers --------------------------------------------------------------------

    def _lookup(self, repo_id: str, revision: str, filename: str) -> tuple[Commit, bytes] | _Reply:
        """The commit holding the file and the file's bytes, or the error reply the Hub would
        give."""
        where = {"repo_id": repo_id, "revision": revision, "filename": filename}
        repo = self.server.hub.repos.get(repo_id)
        authorization = self.headers.get("Authorization")
        if repo is None or (repo.token is not None and authorization != f"Bearer {repo.token}"):
            # The Hub does not tell a missing repo from a private one; 401 when anonymous.
            status = 404 if authorization else 401
            return _error(status, "RepoNotFound", "Repository not found", **where)
        commit = repo.resolve(revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}", **where)
        if filename not in commit.files:
            reply = _error(404, "EntryNotFound", "Entry not found", **where)
            reply.headers["X-Repo-Commit"] = commit.sha
            return reply
        return commit, commit.files[filename]

    def _resolve(self, repo_id: str, revision: str, filename: str) -> _Reply:
        found = self._lookup(repo_id, revision, filename)
        if isinstance(found, _Reply):
            return found
        commit, data = found
        where = {"repo_id": repo_id, "revision": revision, "filename": filename}
        if is_lfs(filename):
            sha256 = hashlib.sha256(data).hexdigest()
            name = filename.rsplit("/", 1)[-1]
            location = f"{self.server.hub.cdn_url}/repos/{sha256}?filename={quote(name)}"
            headers = {
                "Location": location,
                "X-Repo-Commit": commit.sha,
                "ETag": f'"{sha256}"',
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(data)),
                "Accept-Ranges": "bytes",
            }
            return _Reply(302, headers, **where)
        location = f"/api/resolve-cache/models/{repo_id}/{commit.sha}/{quote(filename)}"
        headers = {
            "Location": location,
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{git_blob_sha1(data)}"',
        }
        return _Reply(307, headers, **where)

    def _resolve_cache(self, repo_id: str, sha: str, filename: str) -> _Reply:
        found = self._lookup(repo_id, sha, filename)
        if isinstance(found, _Reply):
            return found
        commit, data = found
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{git_blob_sha1(data)}"',
            "Content-Type": "application/octet-stream",
        }
        return self._content(data, headers, repo_id=repo_id, revision=sha, filename=filename)

    def _cdn(self) -> _Reply:
        url = urlsplit(self.path)
        parts = url.path.split("/")
        blob = self.server.hub._blobs.get(parts[2]) if len(parts) == 3 else None
        if parts[1:2] != ["repos"] or blob is None:
            return _Reply(404, {"Content-Type": "text/plain"}, b"NoSuchKey")
        data, name = blob
        name = parse_qs(url.query).get("filename", [name])[0]
        headers = {
            "ETag": f'"{hashlib.md5(data).hexdigest()}"',
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{name}";',
        }
        return self._content(data, headers, filename=name)

    def _content(self, data: bytes, headers: dict[str, str], **where: str) -> _Reply:
        """200 with the file, or 206 with the part a `Range: bytes=N-[M]` header asks for."""
        headers["Accept-Ranges"] = "bytes"
        wanted = self.headers.get("Range")
        if wanted is None:
            return _Reply(200, headers, data, **where)
        start, end = _parse_range(wanted, len(data))
        if start is None or end is None:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return _Reply(416, headers, **where)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return _Reply(206, headers, data[start : end + 1], **where)


def _parse_range(header: str, size: int) -> tuple[int | None, int | None]:
    unit, _, spec = header.partition("=")
    first, sep, last = spec.partition("-")
    if unit.strip() != "bytes" or not sep or "," in spec:
        return None, None
    try:
        if first == "":  # suffix range: the last N bytes
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), (int(last) if last else size - 1)
    except ValueError:
        return None, None
    end = min(end, size - 1)
    return (start, end) if 0 <= start <= end else (None, None)


def _error(status: int, code: str, message: str, **where: str) -> _Reply:
    headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
    body = ('{"error":"' + message.replace('"', "'") + '"}').encode()
    return _Reply(status, headers, body, **where)
