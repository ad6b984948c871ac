"""A per-model lock shared by every process that uses one models directory.

Two `gateway pull`s, the CLI beside a server, or replicas sharing a models volume would
otherwise write the same files at once, and a pull removes the partial downloads it finds
(left, it assumes, by a pull that was killed). The lock is an flock on
`<models_dir>/.locks/<name>.lock`, held for a whole pull or delete; the kernel drops it when
its holder dies, so a killed pull never leaves it held. Within one process the Puller's
single-flight already serialises pulls; this lock serialises processes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from gateway.source_specs import PullInProgress

LOCKS_DIR = ".locks"


def lock_path(models_dir: Path, name: str) -> Path:
    # Names may hold '/' and ':' (namespace/name:tag): one flat, reversible file name each.
    return models_dir / LOCKS_DIR / f"{quote(name, safe='')}.lock"


@contextmanager
def model_lock(
    models_dir: Path, name: str, *, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold `name`'s lock. With `on_wait`, wait for another holder (calling it once first);
    without, raise PullInProgress at once if another process holds it."""
    path = lock_path(models_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is None:
                raise PullInProgress(f"model '{name}' is being pulled by another process") from None
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
