"""The HTTP side of the local hub (tools/hf_server.py): the Hub's and its CDN's answers to
what huggingface_hub asks, as that module's docstring describes them."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tools.hf_repos import Commit, HubRequest, git_blob_sha1, is_lfs

if TYPE_CHECKING:
    from tools.hf_server import LocalHub


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: LocalHub, origin: str) -> None:
        super().__init__(("127.0.0.1", 0), HubRequestHandler)
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


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer
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
