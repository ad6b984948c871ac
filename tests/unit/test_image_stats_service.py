"""POST /img/stats's service: its parameters are checked before the image is fetched."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import InvalidRequest
from gateway.media import FetchPolicy, ImagePolicy
from gateway.services import media
from gateway.services.media import ImageStatsService


def test_a_bad_averaging_method_is_refused_before_the_fetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched: list[str] = []

    async def read_image_bytes(reference: str, **_: object) -> bytes:
        fetched.append(reference)
        await asyncio.sleep(30)  # a slow image server
        raise AssertionError("unreachable")

    monkeypatch.setattr(media, "read_image_bytes", read_image_bytes)
    service = ImageStatsService(FetchPolicy(), ImagePolicy())
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(asyncio.wait_for(service.stats("http://example.com/a.png", "bogus"), 5))
    assert caught.value.param == "averaging_method"
    assert "not 'bogus'" in caught.value.message
    assert fetched == []


def test_a_bad_averaging_method_is_named_even_when_fetching_is_off() -> None:
    # Before, the fetch's own refusal answered and the bad parameter went unmentioned.
    service = ImageStatsService(FetchPolicy(enabled=False), ImagePolicy())
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(service.stats("http://example.com/a.png", "bogus"))
    assert caught.value.param == "averaging_method"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "content is empty"),
        ("  ", "content is empty"),
        ("file:///etc/passwd", "content: unsupported image reference scheme 'file'"),
        ("aGVsbG8gd29ybGQ=", "content: not a supported image"),  # base64 of text
    ],
)
def test_errors_name_the_content_as_the_embedding_routes_do(content: str, message: str) -> None:
    """/img/embed says "content: ..." (and "content is empty"); /img/stats said neither."""
    service = ImageStatsService(FetchPolicy(), ImagePolicy())
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(service.stats(content, "arithmetic"))
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.param == "content"
