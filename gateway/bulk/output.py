"""The finished output: Parquet (id, vector) or .npy (vectors, with the ids beside them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FORMATS = (".parquet", ".npy")


class OutputError(ValueError):
    """The output cannot be written as asked."""


def check_output(path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"{path}: the output must end in .parquet or .npy")
    if suffix == ".parquet":
        try:
            import pyarrow  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            raise OutputError(
                "writing Parquet needs pyarrow: pip install 'embedding-gateway[parquet]', "
                "or write .npy"
            ) from None
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: no such folder")


def ids_path(output: Path) -> Path:
    """Where a .npy output's ids go (row i of the matrix is ids[i])."""
    return output.with_name(output.name + ".ids.json")


def write_output(path: Path, ids: list[str], vectors: np.ndarray) -> None:
    """Write atomically: the output appears whole or not at all."""
    temporary = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        table = pa.table(
            {
                "id": pa.array(ids, type=pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
            }
        )
        pq.write_table(table, temporary)
    else:
        with temporary.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32))
        ids_temporary = ids_path(path).with_name(f".{ids_path(path).name}.tmp")
        ids_temporary.write_text(json.dumps(ids))
        os.replace(ids_temporary, ids_path(path))
    os.replace(temporary, path)


def read_output(path: Path) -> tuple[list[str], np.ndarray]:
    """The ids and vectors of a finished output (for tests and for checking a run)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        ids = [str(x) for x in table.column("id").to_pylist()]
        column = table.column("vector").combine_chunks()
        dim = column.type.list_size
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        return ids, values.reshape(-1, dim)
    return json.loads(ids_path(path).read_text()), np.load(path)
