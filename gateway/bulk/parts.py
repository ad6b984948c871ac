"""Finished chunks of a bulk job, on disk beside the output, so a killed run can resume.

`<output>.parts/` holds `job.json` (what the job is: input, model, chunking) and one pair of
files per finished chunk: `chunk-NNNNNN.ids.json`, then `chunk-NNNNNN.npy`. Each is written to
a temporary name and renamed, and the vectors file is renamed last, so a chunk exists only once
both are whole; a kill at any moment leaves only whole chunks and stray temporaries (ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gateway.bulk.records import Records

_CHUNK = re.compile(r"chunk-(\d{6})\.npy")


class JobMismatch(ValueError):
    """The parts folder belongs to a different job; resuming it would mix outputs."""


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def job_identity(source: Path, records: Records, **options: object) -> dict[str, object]:
    """What must not change between a run and its resumption: the input and the options.

    A file is known by its size and mtime. A folder's own mtime changes only when an entry
    directly in it is added or removed, so a folder of images is known by a digest of every
    image's (path, size, mtime): one added in a subfolder, or edited in place, changes it.
    """
    stat = source.stat()
    identity: dict[str, object] = {"input": str(source.resolve())}
    if source.is_file():
        identity |= {"input_size": stat.st_size, "input_mtime_ns": stat.st_mtime_ns}
    else:
        digest = hashlib.sha256()
        for record in records.items:  # sorted by path
            file = Path(record.value).stat()
            digest.update(f"{record.id}\0{file.st_size}\0{file.st_mtime_ns}\n".encode())
        identity["input_files"] = f"{len(records.items)}:{digest.hexdigest()}"
    return identity | options


class PartStore:
    def __init__(self, output: Path) -> None:
        self.folder = output.with_name(output.name + ".parts")

    def open(self, job: dict[str, Any], *, restart: bool = False) -> None:
        """Start or resume `job`; a folder left by a different job is an error (or, with
        `restart`, removed)."""
        manifest = self.folder / "job.json"
        if restart and self.folder.exists():
            shutil.rmtree(self.folder)
        if manifest.is_file():
            previous = json.loads(manifest.read_text())
            if previous != job:
                changed = sorted(k for k in job.keys() | previous.keys()
                                 if job.get(k) != previous.get(k))  # fmt: skip
                raise JobMismatch(
                    f"{self.folder} holds a run with different {', '.join(changed)}; "
                    "use --restart to start over"
                )
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(manifest, json.dumps(job, sort_keys=True).encode())

    def done(self) -> set[int]:
        """Chunks that are whole on disk."""
        if not self.folder.is_dir():
            return set()
        found = set()
        for path in self.folder.iterdir():
            match = _CHUNK.fullmatch(path.name)
            if match and path.with_name(f"chunk-{match.group(1)}.ids.json").is_file():
                found.add(int(match.group(1)))
        return found

    def write(self, index: int, ids: list[str], vectors: np.ndarray) -> None:
        stem = self.folder / f"chunk-{index:06d}"
        _write_atomic(stem.with_suffix(".ids.json"), json.dumps(ids).encode())
        buffer = _npy_bytes(vectors)
        _write_atomic(stem.with_suffix(".npy"), buffer)

    def read_ids(self, index: int) -> list[str]:
        ids: list[str] = json.loads((self.folder / f"chunk-{index:06d}.ids.json").read_text())
        return ids

    def read(self, index: int) -> tuple[list[str], np.ndarray]:
        stem = self.folder / f"chunk-{index:06d}"
        ids = json.loads(stem.with_suffix(".ids.json").read_text())
        return ids, np.load(stem.with_suffix(".npy"))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    return buffer.getvalue()
