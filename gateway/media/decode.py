"""Bytes -> a checked, oriented, 8-bit Pillow image; then -> RGB for the encoders.

Rules (each is tested):
- Formats: JPEG (and MPO), PNG, WebP, GIF, BMP, TIFF, recognised by their magic bytes; the
  first frame of an animation or multi-page file.
- JPEG scans: at most `ImagePolicy.max_jpeg_scans` SOS segments in the (first) image, counted
  from the markers before decoding: libjpeg's cost is scans x blocks, so a small progressive
  file with thousands of empty scans would otherwise hold a decoding thread for minutes.
- Size: width and height at least 1, width x height at most `ImagePolicy.max_pixels`, checked
  from the header before any pixel is decoded (so a decompression bomb costs nothing). Pillow's
  own bomb check is tied to the same limit (`apply_pixel_limit`): it guards the few allocations
  Pillow makes while opening (a GIF frame's disposal area, a WebP canvas), and its warning is off.
- EXIF orientation is applied (the picture as a viewer shows it).
- 16-bit and 32-bit integer grey images (I;16, I) are scaled to 8 bits (v / 257, rounded);
  Pillow's own conversion would clip everything above 255 to white. A transparent grey (PNG
  tRNS) is matched on the 16-bit values and kept as an alpha band.
- Transparency (RGBA, LA, PA, palette or grey with a transparent colour) is alpha-composited onto
  white, as transformers' `convert_to_rgb` does from 5.x on; CMYK, YCbCr, 1-bit, grey and palette
  images use Pillow's conversion to RGB.
- Anything Pillow fails on (truncated data, corrupt chunks) is the client's input: a 400.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.media.policy import ImagePolicy, InvalidImage

log = logging.getLogger(__name__)

DEFAULT_IMAGE_POLICY = ImagePolicy()
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
WHITE = (255, 255, 255, 255)
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
# The next JPEG marker: 0xFF and a byte that is not 0x00 (a stuffed 0xFF in entropy-coded data),
# a restart marker (RSTn, inside a scan) or 0xFF (fill before a marker).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOS, _EOI, _TEM = 0xDA, 0xD9, 0x01
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


# The media type of each format the decoder accepts (Pillow's names, as ImagePolicy.formats).
MEDIA_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


def apply_pixel_limit(policy: ImagePolicy) -> None:
    """Make Pillow refuse exactly what `policy` refuses: its error fires above twice
    MAX_IMAGE_PIXELS. Process-wide, so call it once where the policy is built, before decoding."""
    Image.MAX_IMAGE_PIXELS = (policy.max_pixels + 1) // 2
    # Pillow also warns above MAX_IMAGE_PIXELS, i.e. for images the gateway accepts. Filtered
    # process-wide, since warnings.catch_warnings around each decode is not thread-safe.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


apply_pixel_limit(DEFAULT_IMAGE_POLICY)


def sniff_format(head: bytes) -> str | None:
    """The image format named by the first bytes, or None when they match no accepted format."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def load_image(
    data: bytes, policy: ImagePolicy = DEFAULT_IMAGE_POLICY, *, param: str = "input"
) -> Image.Image:
    """Decode and check one image, as stored (EXIF intact, orientation not applied)."""
    if not data:
        raise InvalidImage("the image is empty (0 bytes)", param=param)
    if len(data) > policy.max_bytes:
        raise InvalidImage(
            f"the image is {len(data)} bytes, more than the {policy.max_bytes} allowed",
            param=param,
        )
    kind = sniff_format(data[:16])
    if kind is None or (kind not in policy.formats):
        raise InvalidImage(
            "not a supported image: expected JPEG, PNG, WebP, GIF, BMP or TIFF data", param=param
        )
    if kind == "JPEG":
        scans = jpeg_scans(data, stop_after=policy.max_jpeg_scans)
        if scans > policy.max_jpeg_scans:
            raise InvalidImage(
                f"the JPEG has more than the {policy.max_jpeg_scans} scans (progressive passes) "
                "allowed",
                param=param,
            )
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(policy.formats))
        check_size(image.size, policy, param=param)
        # Decodes the first frame only; LOAD_TRUNCATED_IMAGES stays False so a cut-off
        # file raises instead of being padded with grey.
        image.load()
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:
        raise too_many_pixels(str(exc), data, kind, policy, param=param) from None
    except MemoryError:
        raise InvalidImage("the image is too large to decode", param=param) from None
    except UnidentifiedImageError:  # its message is a BytesIO repr: say it plainly
        declared = header_size(data, kind)
        if declared is not None and min(declared) < 1:
            raise InvalidImage(
                f"the image has no pixels ({declared[0]}x{declared[1]})", param=param
            ) from None
        raise InvalidImage(
            f"the {kind} data is corrupt: its header cannot be read", param=param
        ) from None
    except Exception as exc:  # Pillow raises many types on corrupt input; all are the client's
        raise InvalidImage(f"cannot decode the {kind} image: {exc}", param=param) from None
    return image


def open_image(
    data: bytes, policy: ImagePolicy = DEFAULT_IMAGE_POLICY, *, param: str = "input"
) -> Image.Image:
    """Decode and check one image; oriented, 8 bits per channel, transparency kept."""
    return to_8bit(orient(load_image(data, policy, param=param)))


def jpeg_scans(data: bytes, *, stop_after: int) -> int:
    """The scans (SOS segments) of the first image of a JPEG stream, counted up to
    `stop_after + 1`, walking the markers as libjpeg does: a segment is skipped by its length (so
    a thumbnail inside APP1 does not count), a scan's entropy-coded data and any junk between
    segments up to the next marker, and counting ends at the first EOI (an MPO's second
    picture is not decoded)."""
    scans, pos = 0, 2
    while (found := _NEXT_MARKER.search(data, pos)) is not None:
        pos = found.start()
        marker = data[pos + 1]
        if marker == _EOI:
            break
        if marker == _TEM:  # the one standalone marker the search does not skip
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            break  # libjpeg refuses it; Pillow will say so
        pos += 2 + length
        if marker == _SOS:
            scans += 1
            if scans > stop_after:
                break
    return scans


def header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """Width and height as a PNG or GIF header states them (Pillow refuses 0x0 files
    without saying why)."""
    if kind == "PNG" and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if kind == "GIF" and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    return None


def too_many_pixels(
    message: str, data: bytes, kind: str, policy: ImagePolicy, *, param: str
) -> InvalidImage:
    """Pillow's bomb error (it names its own limit) in the gateway's words."""
    found = _BOMB_PIXELS.search(message)
    if found is None:
        return InvalidImage(f"the image has more than the {policy.max_pixels} pixels allowed",
                            param=param)  # fmt: skip
    pixels = int(found.group(1))
    declared = header_size(data, kind)
    size = (
        f"{declared[0]}x{declared[1]} = "
        if declared and declared[0] * declared[1] == pixels
        else ""
    )
    # Pillow's limit is the policy's unless apply_pixel_limit was not called for this policy.
    limit = policy.max_pixels if pixels > policy.max_pixels else 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return InvalidImage(f"the image is {size}{pixels} pixels, more than the {limit} allowed",
                        param=param)  # fmt: skip


def check_size(size: tuple[int, int], policy: ImagePolicy, *, param: str = "input") -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidImage(f"the image has no pixels ({width}x{height})", param=param)
    if width * height > policy.max_pixels:
        raise InvalidImage(
            f"the image is {width}x{height} = {width * height} pixels, more than the "
            f"{policy.max_pixels} allowed",
            param=param,
        )


def orient(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a malformed EXIF block leaves the image as stored."""
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception as exc:  # corrupt EXIF must not cost the client its image
        log.debug("ignoring unreadable EXIF orientation: %s", exc)
        return image
    return image if oriented is None else oriented


def to_8bit(image: Image.Image) -> Image.Image:
    """High-depth grey -> 8-bit grey by scaling (v / 257), not Pillow's clipping; a transparent
    colour (PNG tRNS) becomes an alpha band (LA)."""
    if image.mode not in _HIGH_DEPTH_MODES:
        return image
    values = np.asarray(image).astype(np.int64)
    grey = ((np.clip(values, 0, 65535) + 128) // 257).astype(np.uint8)
    key = image.info.get("transparency")
    if not isinstance(key, int):
        return Image.fromarray(grey)  # 2-D uint8: mode L
    # Matched on the 16-bit values, as PNG decoders do: scaling the key to 8 bits too would
    # also hide the neighbouring 256 shades that round to the same grey.
    alpha = np.where(values == key, 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey, alpha], axis=-1), "LA")


def has_alpha(image: Image.Image) -> bool:
    bands = image.getbands()
    return "A" in bands or "a" in bands or image.info.get("transparency") is not None


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if image.mode == "RGB" and not has_alpha(image):
        return image
    if has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(
    data: bytes, policy: ImagePolicy = DEFAULT_IMAGE_POLICY, *, param: str = "input"
) -> Image.Image:
    """Bytes -> the RGB image the encoders see."""
    image = open_image(data, policy, param=param)
    try:
        return to_rgb(image)
    except Exception as exc:  # e.g. a colour mode Pillow cannot convert (LAB, HSV)
        raise InvalidImage(
            f"cannot convert the {image.mode} image to RGB: {exc}", param=param
        ) from None
