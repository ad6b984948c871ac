"""Image statistics (EXIF, average and dominant colour) for the native /img/stats route."""

from __future__ import annotations

from gateway.errors import EmptyInput
from gateway.media import (
    FetchPolicy,
    ImagePolicy,
    ImageStats,
    image_stats,
    in_decoder_thread,
    named_errors,
    read_image_bytes,
)
from gateway.media.stats import check_averaging_method


class ImageStatsService:
    def __init__(self, fetch_policy: FetchPolicy, image_policy: ImagePolicy) -> None:
        self.fetch_policy = fetch_policy
        self.image_policy = image_policy

    async def stats(self, content: str, averaging_method: str) -> ImageStats:
        # Parameters first: a bad one must not wait for (or be hidden by) the image's fetch.
        check_averaging_method(averaging_method)
        # Worded as /img/embed words the same content: "content is empty", "content: ...".
        if not content.strip():
            raise EmptyInput("content is empty", param="content")
        with named_errors("content"):
            raw = await read_image_bytes(
                content, fetch=self.fetch_policy, image=self.image_policy, param="content"
            )
            return await in_decoder_thread(
                image_stats, raw, averaging_method=averaging_method, policy=self.image_policy
            )
