"""What a corpus job reads and where it writes, checked on the driver before Ray starts.

Ray's readers are given the exact files checked here (a glob is expanded here, since Ray's
readers do not expand one, and no extension filter of Ray's drops a file this accepted), and
the destination must be empty, or hold only an earlier run's Parquet files to overwrite:
Ray's writer appends by default, which would mix two runs' rows in one folder.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PARQUET_SUFFIXES = frozenset({".parquet"})
JSON_SUFFIXES = frozenset({".jsonl", ".json", ".ndjson"})  # one JSON object a line


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
