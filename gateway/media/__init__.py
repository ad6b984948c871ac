"""Image inputs: references (URL, data URL, base64), safe fetching, decoding, statistics.

The service's entry point is `read_images`: it turns a request's image references into whatever
`convert` makes of each decoded RGB image (an encoder's prepared item, say), fetching URLs
concurrently on the event loop and decoding in worker threads.

Decoding runs in its own pool (`in_decoder_thread`), one thread per CPU, never in asyncio's
default executor: that one also tokenizes long texts and finishes large outputs, and a few image
requests (a 50 MP picture is seconds of decoding) would otherwise queue every text request
behind their decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from PIL import Image

from gateway.concurrency import allowed_cpus, gather_or_cancel
from gateway.errors import GatewayError
from gateway.media.decode import apply_pixel_limit, decode_image, open_image, sniff_format, to_rgb
from gateway.media.fetch import FetchedImage, fetch_image
from gateway.media.policy import (
    FetchPolicy,
    ForbiddenURL,
    ImageFetchError,
    ImagePolicy,
    InvalidImage,
)
from gateway.media.refs import ImageRef, looks_like_url, parse_image_ref
from gateway.media.stats import ImageStats, image_stats

__all__ = [
    "FetchPolicy",
    "FetchedImage",
    "ForbiddenURL",
    "ImageFetchError",
    "ImagePolicy",
    "ImageRef",
    "ImageStats",
    "InvalidImage",
    "apply_pixel_limit",
    "decode_image",
    "fetch_image",
    "image_stats",
    "in_decoder_thread",
    "looks_like_url",
    "named_errors",
    "open_image",
    "parse_image_ref",
    "read_image_bytes",
    "read_images",
    "sniff_format",
    "to_rgb",
]

T = TypeVar("T")
P = ParamSpec("P")

_decoders: ThreadPoolExecutor | None = None
_decoders_lock = threading.Lock()


def decoder_threads() -> int:
    """One decoding thread per CPU this process may run on."""
    return max(1, len(allowed_cpus()))


def _decoder_pool() -> ThreadPoolExecutor:
    global _decoders
    with _decoders_lock:
        if _decoders is None:
            _decoders = ThreadPoolExecutor(decoder_threads(), thread_name_prefix="image-decode")
        return _decoders


async def in_decoder_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """asyncio.to_thread, on the image decoding pool (context variables travel along)."""
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_decoder_pool(), call)


@contextlib.contextmanager
def named_errors(where: str) -> Iterator[None]:
    """Errors about one image start with where the request has it ("content: ", "input[2]: "),
    on every image route alike."""
    try:
        yield
    except GatewayError as exc:
        exc.message = f"{where}: {exc.message}"
        exc.args = (exc.message,)
        raise


async def read_image_bytes(
    reference: str, *, fetch: FetchPolicy, image: ImagePolicy, param: str = "input"
) -> bytes:
    """The encoded bytes behind one reference (inline data decoded, URLs fetched)."""
    ref = parse_image_ref(reference, max_bytes=image.max_bytes, param=param)
    if ref.data is not None:
        return ref.data
    assert ref.url is not None
    try:
        return (await fetch_image(ref.url, fetch)).data
    except GatewayError as exc:
        exc.param = param
        raise


async def read_images(
    references: Sequence[str],
    *,
    fetch: FetchPolicy,
    image: ImagePolicy,
    convert: Callable[[Image.Image], T] | None = None,
    param: str = "input",
    indices: Sequence[int] | None = None,
) -> list[T]:
    """Fetch, decode and convert every reference, in order; a failure names its index. A
    reference repeated in the list is read once and its result repeated.

    `indices` are the references' positions in the client's input list (for error messages),
    when the images are only some of its inputs.

    `convert` runs in the decoding thread right after decoding, so only `fetch.concurrency`
    full-size images exist at any moment (a 50 MP photo is 150 MB as RGB).
    """
    gate = asyncio.Semaphore(fetch.concurrency)
    transform = convert if convert is not None else (lambda rgb: rgb)

    def decode(data: bytes, where: str) -> T:
        return transform(decode_image(data, image, param=where))

    positions = list(indices) if indices is not None else list(range(len(references)))

    async def one(index: int, reference: str) -> T:
        where = f"{param}[{positions[index]}]" if len(references) > 1 or indices else param
        async with gate:
            with named_errors(where):
                data = await read_image_bytes(reference, fetch=fetch, image=image, param=where)
                return await in_decoder_thread(decode, data, where)

    # Each distinct reference is fetched and decoded once, named by its first position; its
    # result serves every position that repeats it.
    first: dict[str, int] = {}
    for i, ref in enumerate(references):
        first.setdefault(ref, i)
    done = await gather_or_cancel(one(i, ref) for ref, i in first.items())
    by_reference = dict(zip(first, done, strict=True))
    return [by_reference[ref] for ref in references]
