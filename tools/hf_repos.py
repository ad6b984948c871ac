"""What the local hub (tools/hf_server.py) holds and logs: repositories with their commits
and refs, which files are LFS files, and the requests it answered."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch

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


def is_lfs(path: str) -> bool:
    return any(fnmatch(path.rsplit("/", 1)[-1], pattern) for pattern in LFS_PATTERNS)
