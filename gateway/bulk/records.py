"""Records to embed, read from text lines, JSONL, CSV, Parquet, or a folder of images.

Each record has an id (the line or row number, an id column's value, or an image's path inside
the folder) and a value (the text, or the image file's path). Blank texts cannot be embedded:
they are counted and reported, never silently dropped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".lines"})
DEFAULT_COLUMN = "text"


class RecordError(ValueError):
    """The input cannot be read as asked; the message names the file, row or column."""


@dataclass(frozen=True)
class Record:
    id: str
    value: str


@dataclass
class Records:
    items: list[Record]
    blank: int  # texts skipped because they were empty or whitespace
    images: bool


def read_records(path: Path, *, column: str | None = None, id_column: str | None = None) -> Records:
    try:
        return _read(path, column, id_column)
    except UnicodeDecodeError as exc:  # a CLI user's file: one line, not a traceback
        raise RecordError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except PermissionError as exc:
        raise RecordError(f"{path}: {exc.strerror}") from None


def _read(path: Path, column: str | None, id_column: str | None) -> Records:
    if not path.exists():
        raise RecordError(f"{path}: no such file or folder")
    if path.is_dir():
        return Records(_images(path), 0, images=True)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows: Iterable[tuple[int, dict[str, Any]]] = _jsonl(path)
    elif suffix in (".csv", ".tsv"):
        rows = _csv(path, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        rows = _parquet(path, column or DEFAULT_COLUMN, id_column)
    elif suffix in TEXT_SUFFIXES or not suffix:
        if column or id_column:
            raise RecordError(f"{path}: --column and --id-column apply to JSONL, CSV and Parquet")
        return _lines(path)
    else:
        raise RecordError(
            f"{path}: unknown input type {suffix!r}; use .txt (one text a line), .jsonl, .csv, "
            ".tsv, .parquet, or a folder of images"
        )
    return _from_rows(path, rows, column or DEFAULT_COLUMN, id_column)


def _lines(path: Path) -> Records:
    items, blank = [], 0
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if text.strip():
                items.append(Record(str(number), text))
            else:
                blank += 1
    return Records(items, blank, images=False)


def _jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise RecordError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise RecordError(f"{path}:{number}: expected a JSON object a line")
            yield number, row


def _csv(path: Path, delimiter: str) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        yield from enumerate(reader, start=2)


def _parquet(
    path: Path, column: str, id_column: str | None
) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise RecordError(
            "reading Parquet needs pyarrow: pip install 'embedding-gateway[parquet]'"
        ) from None
    schema = pq.read_schema(path)
    wanted = [c for c in (column, id_column) if c]
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise RecordError(f"{path}: no column {missing[0]!r}; columns: {', '.join(schema.names)}")
    table = pq.read_table(path, columns=wanted)
    yield from enumerate(table.to_pylist(), start=1)


def _from_rows(
    path: Path, rows: Iterable[tuple[int, dict[str, Any]]], column: str, id_column: str | None
) -> Records:
    items, blank, seen = [], 0, set()
    for number, row in rows:
        if column not in row:
            names = ", ".join(map(str, row)) or "none"
            raise RecordError(f"{path}: row {number} has no column {column!r} (it has: {names})")
        text = row[column]
        if text is None or (isinstance(text, str) and not text.strip()):
            blank += 1
            continue
        if not isinstance(text, str):
            raise RecordError(f"{path}: row {number}: {column!r} is not a string")
        if id_column is None:
            record_id = str(number)
        elif row.get(id_column) is None:
            raise RecordError(f"{path}: row {number} has no {id_column!r}")
        else:
            record_id = str(row[id_column])
        if record_id in seen:
            raise RecordError(f"{path}: row {number}: id {record_id!r} appears twice")
        seen.add(record_id)
        items.append(Record(record_id, text))
    return Records(items, blank, images=False)


def _images(folder: Path) -> list[Record]:
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise RecordError(
            f"{folder}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "give a file to embed texts"
        )
    return [Record(p.relative_to(folder).as_posix(), str(p)) for p in files]
