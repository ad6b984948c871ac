"""Image references as clients send them: a data URL, raw base64, or an http(s) URL."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from gateway.media.policy import InvalidImage

_DATA_URL = re.compile(
    r"data:(?P<type>[^,;]*)(?P<params>(;[^,;]*)*),(?P<data>.*)", re.DOTALL | re.I
)
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class ImageRef:
    """Either inline bytes (`data`) or a URL to fetch (`url`)."""

    data: bytes | None = None
    url: str | None = None

    @property
    def is_url(self) -> bool:
        return self.url is not None


def looks_like_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


def parse_image_ref(value: str, *, max_bytes: int, param: str = "input") -> ImageRef:
    """Classify and (for inline images) decode one reference; refuses anything else."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidImage("an image must be a non-empty string", param=param)
    value = value.strip()
    if looks_like_url(value):
        return ImageRef(url=value)
    if value[:5].lower() == "data:":
        return ImageRef(data=_parse_data_url(value, max_bytes=max_bytes, param=param))
    # Base64 never contains ':', so "name:" can only be another URL scheme (file:, ftp:, ...).
    scheme = _SCHEME.match(value)
    if scheme and scheme.group(1).lower() in ("http", "https"):  # "https:/host", "http:\\host"
        raise InvalidImage(
            f"malformed image URL: expected {scheme.group(1).lower()}://host/path after the scheme",
            param=param,
        )
    if scheme:
        raise InvalidImage(
            f"unsupported image reference scheme {scheme.group(1)!r}: send an http(s) URL, "
            "a data:image/...;base64, URL or raw base64",
            param=param,
        )
    return ImageRef(data=decode_base64(value, max_bytes=max_bytes, param=param))


def _parse_data_url(value: str, *, max_bytes: int, param: str) -> bytes:
    """data:image/<type>[;param=value...];base64,<data> (RFC 2397, base64 only)."""
    header, comma, payload = value[5:].partition(",")
    if not comma:
        raise InvalidImage(
            "malformed data URL: expected data:image/<type>;base64,<data>", param=param
        )
    media_type, *params = (part.strip().lower() for part in header.split(";"))
    if not media_type.startswith("image/"):
        raise InvalidImage(
            f"data URL media type {media_type or '(none)'!r} is not an image type (image/...)",
            param=param,
        )
    if "base64" not in params:
        raise InvalidImage("data URL images must be base64-encoded (;base64,)", param=param)
    return decode_base64(payload, max_bytes=max_bytes, param=param)


def too_large(max_bytes: int) -> str:
    """How an inline image over the limit is refused (`gateway embed` words a file so too)."""
    return f"the image is larger than the {max_bytes} bytes allowed"


def decode_base64(text: str, *, max_bytes: int, param: str = "input") -> bytes:
    """Standard or URL-safe base64; line breaks (MIME wrapping) and missing padding are
    tolerated, spaces are not (they mean the text is something else)."""
    text = _LINE_BREAKS.sub("", text.strip())
    if not text:
        raise InvalidImage("the base64 image data is empty", param=param)
    # Refuse before decoding: 4 characters carry 3 bytes, and padding none (counted, it refused
    # an image of exactly the limit whose size is not a multiple of 3).
    if len(text.rstrip("=")) * 3 // 4 > max_bytes:
        raise InvalidImage(too_large(max_bytes), param=param)
    if not _BASE64_CHARS.fullmatch(text):
        raise InvalidImage(
            "not a valid image reference: expected an http(s) URL, a data:image/...;base64, "
            "URL or raw base64",
            param=param,
        )
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        raise InvalidImage("invalid base64 image data (truncated)", param=param)
    text += "=" * (-len(text) % 4)
    try:
        altchars = b"-_" if ("-" in text or "_" in text) else None
        data = base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"invalid base64 image data: {exc}", param=param) from None
    if len(data) > max_bytes:
        raise InvalidImage(too_large(max_bytes), param=param)
    return data
