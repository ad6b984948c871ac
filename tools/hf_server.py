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
import threading
from collections.abc import Mapping
from pathlib import Path

from tools.hf_handler import HubServer
from tools.hf_repos import Commit, HubRequest, Repo, git_blob_sha1, is_lfs


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
        self._hub = HubServer(self, "hub")
        self._cdn = HubServer(self, "cdn")
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
