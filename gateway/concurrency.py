"""asyncio helpers shared by the service and the media layer, and the CPUs threads may use."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_or_cancel(jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently, results in order; on the first failure cancel the rest and raise it.

    asyncio.gather alone would leave the others running (fetching, decoding) for nothing.
    """
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def allowed_cpus() -> set[int]:
    """The logical CPUs this process may run on (its affinity; every CPU off Linux)."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))
