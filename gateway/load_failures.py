"""The last failed load of each model, remembered with the state of its files at the time.

Files that have not changed since a load failed will most likely fail to load again, so the
manager does not evict healthy idle models to make room for such a load (gateway.manager).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from gateway.errors import GatewayError

# (path, mtime in ns, size) of each of a model's files: rewriting or replacing one changes it.
FilesState = tuple[tuple[str, int, int], ...]


def files_state(paths: Mapping[str, Path]) -> FilesState:
    state = []
    for path in sorted(str(p) for p in paths.values()):
        try:
            stat = os.stat(path)
        except OSError:
            state.append((path, -1, -1))
        else:
            state.append((path, stat.st_mtime_ns, stat.st_size))
    return tuple(state)


class LoadFailures(Mapping[str, str]):
    """Model name -> the message of its last failed load (what /admin/models shows)."""

    def __init__(self) -> None:
        self._failed: dict[str, tuple[FilesState, GatewayError]] = {}

    def __getitem__(self, name: str) -> str:
        return self._failed[name][1].message

    def __iter__(self) -> Iterator[str]:
        return iter(self._failed)

    def __len__(self) -> int:
        return len(self._failed)

    def record(self, name: str, files: FilesState, error: GatewayError) -> None:
        # A copy, never raised: the error itself is about to be raised, and would then hold the
        # failed load's traceback and the exception it replaced, and through their frames the
        # request's inputs, for as long as the failure is remembered.
        self._failed[name] = (files, copy.copy(error))

    def forget(self, name: str) -> None:
        self._failed.pop(name, None)

    def unchanged(self, name: str, files: FilesState) -> GatewayError | None:
        """The error of `name`'s last failed load if its files are as they were then (a copy:
        each request raises its own)."""
        failed = self._failed.get(name)
        if failed is None or failed[0] != files:
            return None
        return copy.copy(failed[1])
