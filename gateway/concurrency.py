"""asyncio helpers shared by the service and the media layer."""

from __future__ import annotations

import asyncio
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
