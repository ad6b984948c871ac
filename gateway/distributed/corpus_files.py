"""What a corpus job reads and where it writes, checked on the driver before Ray starts.

Ray's readers are given the exact files checked here (a glob is expanded here, since Ray's
readers do not expand one, and no extension filter of Ray's drops a file this accepted), and
the destination must be empty, or hold only an earlier run's Parquet files to overwrite:
Ray's writer appends by default, which would mix two runs' rows in one folder.

A run writes into a hidden staging folder inside the destination and moves its files into place
only once all are written (`publish`): an earlier run's files are replaced then, not at the
start (Ray's own overwrite mode empties the folder before the first row is embedded, so a run
that failed or was stopped lost the earlier output). A staging folder left by a run that was
killed is ignored by later runs' checks and may be deleted.
"""

from __future__ import annotations

import glob
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PARQUET_SUFFIXES = frozenset({".parquet"})
JSON_SUFFIXES = frozenset({".jsonl", ".json", ".ndjson"})  # one JSON object a line
# A run's files before they are published, and an earlier run's while they are replaced.
STAGING_PREFIX = ".embed_corpus-"


class CorpusError(ValueError):
    """The job's input or destination is not usable; the message says why, in one line."""


@dataclass(frozen=True)
class CorpusFiles:
    format: Literal["parquet", "json"]
    paths: list[str]  # sorted


def corpus_files(source: str) -> CorpusFiles:
    """The files of `source` (a file, a folder read recursively, or a glob), all one format."""
    path = Path(source)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
    elif path.is_file():
        files = [path]
    elif glob.has_magic(source):
        files = [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
    else:
        raise CorpusError(f"{source}: no such file or folder")
    if not files:
        raise CorpusError(f"{source}: no input files")
    suffixes = {p.suffix.lower() for p in files}
    paths = sorted(str(p) for p in files)
    if suffixes <= PARQUET_SUFFIXES:
        return CorpusFiles("parquet", paths)
    if suffixes <= JSON_SUFFIXES:
        return CorpusFiles("json", paths)
    raise CorpusError(
        f"{source}: expected only .parquet, or only .jsonl/.json/.ndjson files, "
        f"found {', '.join(sorted(suffixes))}"
    )


def check_destination(destination: str, *, overwrite: bool = False) -> None:
    """An empty (or new) folder; with `overwrite`, one that holds only Parquet files."""
    path = Path(destination)
    if path.exists() and not path.is_dir():
        raise CorpusError(f"{destination}: not a folder")
    entries = sorted(path.iterdir()) if path.is_dir() else []
    entries = [e for e in entries if not e.name.startswith(STAGING_PREFIX)]  # a killed run's
    if not entries:
        return
    if not overwrite:
        raise CorpusError(
            f"{destination}: not empty ({len(entries)} entries); choose an empty folder, or "
            "pass --overwrite to replace an earlier run's output"
        )
    others = [e.name for e in entries if not (e.is_file() and e.suffix == ".parquet")]
    if others:
        raise CorpusError(
            f"{destination}: --overwrite replaces only an earlier run's .parquet files, and "
            f"the folder also holds {others[0]!r}"
        )


def parquet_files(destination: str) -> set[Path]:
    return set(Path(destination).glob("*.parquet"))


def staging_folder(destination: str) -> Path:
    """A new, empty hidden folder inside `destination` (made if missing) for a run's files: on
    the same filesystem, and seen by Ray's workers wherever the destination is."""
    path = Path(destination) / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def publish(staging: Path, destination: str) -> list[Path]:
    """Move a finished run's Parquet files from `staging` into `destination`, replacing the
    earlier run's there (checked to be all the folder holds). The earlier files are moved aside
    first and deleted only after the new ones are in place: renames, no copying. Returns the
    published files."""
    folder = Path(destination)
    earlier = sorted(parquet_files(destination))
    aside = staging.with_name(f"{staging.name}-replaced")
    if earlier:
        aside.mkdir()
        for path in earlier:
            path.rename(aside / path.name)
    published = []
    for path in sorted(staging.glob("*.parquet")):
        target = folder / path.name
        path.rename(target)
        published.append(target)
    shutil.rmtree(staging)
    shutil.rmtree(aside, ignore_errors=True)
    return published


def discard(staging: Path) -> None:
    """A failed run's staging folder and what it had written: the destination is untouched."""
    shutil.rmtree(staging, ignore_errors=True)
