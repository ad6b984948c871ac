"""Image statistics (EXIF, average and dominant colour) for the native /img/stats route."""

from __future__ import annotations

import asyncio

from gateway.media import FetchPolicy, ImagePolicy, ImageStats, image_stats, read_image_bytes


class ImageStatsService:
    def __init__(self, fetch_policy: FetchPolicy, image_policy: ImagePolicy) -> None:
        self.fetch_policy = fetch_policy
        self.image_policy = image_policy

    async def stats(self, content: str, averaging_method: str) -> ImageStats:
        raw = await read_image_bytes(
            content, fetch=self.fetch_policy, image=self.image_policy, param="content"
        )
        return await asyncio.to_thread(
            image_stats, raw, averaging_method=averaging_method, policy=self.image_policy
        )
