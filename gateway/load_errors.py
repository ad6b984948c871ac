"""What a client is told when a model cannot be loaded or pulled: the model, the file, the cause.

Clients get file names, never where files live on the server (gateway/redact.py); the server log
keeps the full text.
"""

from __future__ import annotations

import logging
import re
from pathlib import PurePath

from gateway.errors import (
    GatewayError,
    InsufficientStorage,
    ModelLoadError,
    ModelNotFound,
    PullFailed,
)
from gateway.redact import without_paths
from gateway.registry import ModelSpec
from gateway.sources import LocalSource, ModelStore, SourceError, StorageError

log = logging.getLogger(__name__)


def missing_files_error(spec: ModelSpec, store: ModelStore, roles: list[str]) -> ModelNotFound:
    names = ", ".join(store.path_of(spec, role).name for role in roles)
    if len(roles) == len(spec.files):  # never pulled (or its folder is gone)
        return ModelNotFound(
            f"model '{spec.name}' not found, try pulling it first "
            f"(gateway pull {spec.name}, or POST /api/pull)"
        )
    local = all(isinstance(store.source_of(spec, spec.files[r]), LocalSource) for r in roles)
    if local:  # some of its files were removed from the registry's folder: pulling cannot help
        folder = store.path_of(spec, roles[0]).parent
        log.warning("model %s: %s missing from %s", spec.name, names, folder)
        return ModelNotFound(f"model '{spec.name}': {names} missing from its folder {folder.name}")
    return ModelNotFound(
        f"model '{spec.name}': {names} missing, pull it again "
        f"(gateway pull {spec.name}, or POST /api/pull)"
    )


# How running out of memory reads in what a runtime raises: Python's MemoryError aside, ONNX
# Runtime ("Failed to allocate memory", CUDA's "out of memory" and cuBLAS/cuDNN ALLOC_FAILED)
# and OpenVINO (std::bad_alloc) raise RuntimeErrors that only their text tells apart.
_OUT_OF_MEMORY = re.compile(
    r"failed to allocate|bad[_ ]alloc|out of memory|cudaErrorMemoryAllocation|ALLOC_FAILED",
    re.IGNORECASE,
)


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, says memory ran out."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes, bounded
        if seen is None:
            return False
        if isinstance(seen, MemoryError) or _OUT_OF_MEMORY.search(str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def load_error(name: str, exc: Exception) -> GatewayError:
    """Any failure while building a model, as a ModelLoadError that names the model."""
    if isinstance(exc, ModelLoadError):  # encoders name the model too: say it once
        own = exc.message.removeprefix(f"model {name}: ")
        return ModelLoadError(f"model '{name}' could not be loaded: {own}")
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, OSError):
        log.warning("model %s failed to load: %s", name, exc)
        where = f" ({PurePath(exc.filename).name})" if isinstance(exc.filename, str) else ""
        detail = f"{exc.strerror}{where}" if exc.strerror else without_paths(str(exc))
        return ModelLoadError(f"model '{name}' could not be loaded: {detail}")
    log.warning("model %s failed to load", name, exc_info=exc)
    cause = without_paths(str(exc))
    return ModelLoadError(f"model '{name}' could not be loaded: {type(exc).__name__}: {cause}")


def pull_error(name: str, exc: SourceError, done: str = "pulled") -> GatewayError:
    """507 when the models folder cannot be written (full, not writable, a file in the way:
    the server's problem), else 502 (the source's). `done`: "pulled" or "deleted"."""
    log.warning("model %s could not be %s: %s", name, done, exc)
    cause = without_paths(str(exc))
    if isinstance(exc, StorageError):
        return InsufficientStorage(f"model '{name}' could not be {done}: {cause}")
    return PullFailed(f"model '{name}' could not be {done}: {cause}")
