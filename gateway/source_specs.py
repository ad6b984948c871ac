"""Model source specs: what a registry `source:` names, and the errors of reading sources.

This module owns the three kinds of source (`pypi://package==version`, `hf://org/repo@revision`
and a local directory, absolute or relative to registry.yaml, `file://` accepted), parsing a
source URI into one of them, and the exceptions a pull raises: `SourceError` for an unreadable
source or a failed checksum, `StorageError` when the models directory cannot be written
(`StorageFull` when its disk runs out), and `PullInProgress` for a delete during another
process's pull.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path


class SourceError(RuntimeError):
    """A source could not be read, or a file failed its checksum."""


class StorageError(SourceError):
    """The models directory could not be written: not writable, a file where a folder should
    be, a full disk. The server's problem, not the source's (HTTP 507)."""


class StorageFull(StorageError):
    """The models directory's filesystem ran out of space while a pull wrote to it."""


class PullInProgress(SourceError):
    """Another process is pulling the model (its lock is held), so it cannot be deleted now."""


def storage_full(exc: OSError, directory: Path) -> StorageFull:
    return StorageFull(f"no space left on the disk of {directory} ({exc.strerror})")


def storage_error(exc: OSError, directory: Path) -> StorageError:
    """An OSError of the models directory as a StorageError naming the folder and the error
    (and the file, relative to the folder, when the error names one inside it)."""
    if exc.errno == errno.ENOSPC:
        return storage_full(exc, directory)
    where = ""
    if isinstance(exc.filename, str):
        path = Path(exc.filename)
        inside = path.is_relative_to(directory)
        where = f" ({path.relative_to(directory) if inside else path})"
    reason = exc.strerror or str(exc)
    return StorageError(f"models folder {directory}: {reason}{where}")


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
