"""Images as clients send them, each with the RGB pixels its decoding rule must produce.

Every format the gateway decodes (PNG, JPEG, WebP lossless and lossy, BMP, TIFF, GIF), and the
rules that turn a stored image into RGB: first frame of an animation, alpha composited onto
white, palette transparency, greyscale, CMYK, 16-bit greyscale scaled to 8 bits, and EXIF
orientation. The expected RGB is computed here independently (numpy palette lookups, alpha
compositing, np.rot90), so the rules are pinned whatever transformers version is installed;
tests/parity/test_vision_parity.py and tests/api/images/ compare against it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tools.vision import encode, photo_like


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes  # what a client sends
    reference: np.ndarray  # uint8 HWC RGB: what decoding must produce


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def decoded(data: bytes) -> Image.Image:
    """Pillow's own decoding of lossy bytes (the codec, not a gateway rule)."""
    return Image.open(io.BytesIO(data))


def composite_on_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255
    return np.round(color * a + 255 * (1 - a)).astype(np.uint8)


def with_orientation(image: Image.Image, fmt: str, orientation: int, **options: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif, **options)


def make_cases() -> list[Case]:
    cases: list[Case] = []
    wide = photo_like(1, 640, 480)
    cases.append(Case("png-wide", encode(wide, "PNG"), rgb(wide)))
    tall = encode(photo_like(2, 333, 777), "JPEG", quality=95)
    cases.append(Case("jpeg-tall", tall, rgb(decoded(tall))))
    tiny = photo_like(3, 60, 100)  # upscaled to 224
    cases.append(Case("webp-lossless-tiny", encode(tiny, "WEBP", lossless=True), rgb(tiny)))
    lossy = encode(photo_like(4, 500, 500), "WEBP", quality=80)
    cases.append(Case("webp-lossy-square", lossy, rgb(decoded(lossy))))
    bmp = photo_like(5, 257, 311)
    cases.append(Case("bmp", encode(bmp, "BMP"), rgb(bmp)))
    tiff = photo_like(6, 410, 230)
    cases.append(Case("tiff-lzw", encode(tiff, "TIFF", compression="tiff_lzw"), rgb(tiff)))
    panorama = photo_like(7, 1600, 90)
    cases.append(Case("png-panorama", encode(panorama, "PNG"), rgb(panorama)))

    # GIF: a palette image, first frame of two.
    first = photo_like(8, 320, 240).quantize(64)
    second = photo_like(9, 320, 240).quantize(64)
    palette = np.asarray(first.getpalette(), np.uint8).reshape(-1, 3)
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    cases.append(Case("gif-first-frame", gif, palette[np.asarray(first)]))

    # RGBA: alpha varies across the image (opaque, translucent, clear).
    color = photo_like(10, 400, 300)
    alpha = np.asarray(photo_like(11, 400, 300).convert("L"))
    alpha = np.clip((alpha.astype(np.int32) - 60) * 2, 0, 255).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([np.asarray(color), alpha]))  # [h, w, 4] uint8: RGBA
    cases.append(Case("png-rgba", encode(rgba, "PNG"), composite_on_white(rgb(color), alpha)))

    # Palette with a transparent index.
    indexed = photo_like(12, 300, 280).quantize(32)
    indices = np.asarray(indexed)
    clear = int(np.bincount(indices.ravel()).argmax())
    colors = np.asarray(indexed.getpalette(), np.uint8).reshape(-1, 3)[indices]
    expected = np.where((indices == clear)[..., None], np.uint8(255), colors)
    cases.append(Case("png-palette-transparent", encode(indexed, "PNG", transparency=clear),
                      expected))  # fmt: skip

    grey = encode(photo_like(13, 350, 260).convert("L"), "JPEG", quality=95)
    grey_pixels = np.asarray(decoded(grey))
    cases.append(Case("jpeg-grayscale", grey, np.dstack([grey_pixels] * 3)))

    cmyk = encode(photo_like(14, 300, 400).convert("CMYK"), "JPEG", quality=95)
    # CMYK -> RGB is Pillow's conversion, as transformers' convert("RGB") does it.
    cases.append(Case("jpeg-cmyk", cmyk, rgb(decoded(cmyk))))

    eight = np.asarray(photo_like(15, 280, 330).convert("L"))
    sixteen = Image.fromarray(eight.astype(np.uint16) * 257)  # mode I;16
    assert sixteen.mode == "I;16"
    cases.append(Case("png-16bit-grey", encode(sixteen, "PNG"), np.dstack([eight] * 3)))

    # EXIF orientation 6: the viewer turns the stored pixels 90 degrees clockwise.
    stored = photo_like(16, 500, 300)
    rotated = with_orientation(stored, "JPEG", 6, quality=95)
    cases.append(Case("jpeg-exif-6", rotated, np.rot90(rgb(decoded(rotated)), k=-1)))
    # Orientation 8: 90 degrees counter-clockwise; 3: half a turn.
    cases.append(Case("png-exif-8", with_orientation(stored, "PNG", 8), np.rot90(rgb(stored))))
    cases.append(Case("tiff-exif-3", with_orientation(stored, "TIFF", 3),
                      np.rot90(rgb(stored), k=2)))  # fmt: skip
    return cases


CASES = make_cases()
