"""Image decoding runs in its own thread pool, not in asyncio's default executor.

The default executor also tokenizes long texts and finishes large outputs; when image decodes
(seconds each for a big picture) filled it, a text request behind two image requests waited
22 s on the real server for a thread. Here the default executor is one thread, held busy: the
images must still decode, and text work must still run while the decoders are all busy.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from gateway.media import FetchPolicy, ImagePolicy, decoder_threads, in_decoder_thread, read_images
from gateway.services.media import ImageStatsService
from tools.vision import encode, photo_like

T = TypeVar("T")
PNG = "data:image/png;base64," + base64.b64encode(encode(photo_like(8, 40, 30), "PNG")).decode()


def with_default_executor_busy(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` while asyncio's default executor (one thread) is held by another job."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1))
        release = threading.Event()
        held = loop.run_in_executor(None, release.wait)
        try:
            return await asyncio.wait_for(work(), 10)
        finally:
            release.set()
            await held

    return asyncio.run(main())


def test_images_decode_while_the_default_executor_is_busy() -> None:
    decoded = with_default_executor_busy(
        lambda: read_images([PNG, PNG], fetch=FetchPolicy(), image=ImagePolicy())
    )
    assert [image.size for image in decoded] == [(40, 30), (40, 30)]


def test_image_stats_run_while_the_default_executor_is_busy() -> None:
    service = ImageStatsService(FetchPolicy(), ImagePolicy())
    stats = with_default_executor_busy(lambda: service.stats(PNG, "arithmetic"))
    assert stats.color_data is not None


def test_text_work_runs_while_every_decoder_is_busy() -> None:
    async def main() -> int:
        release = threading.Event()
        busy = [asyncio.ensure_future(in_decoder_thread(release.wait)) for _ in range(8)]
        try:
            return await asyncio.wait_for(asyncio.to_thread(lambda: 42), 10)
        finally:
            release.set()
            await asyncio.gather(*busy)

    assert decoder_threads() >= 1
    assert asyncio.run(main()) == 42


def test_context_variables_reach_the_decoder_thread() -> None:
    request_id = contextvars.ContextVar("request_id", default="none")

    async def main() -> str:
        request_id.set("r-17")
        return await in_decoder_thread(request_id.get)

    assert asyncio.run(main()) == "r-17"
