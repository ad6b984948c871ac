"""Image statistics for the native `POST /img/stats` route (EXIF, mean and dominant colour).

Field names and the method follow the server this gateway replaces (nomic-api-rs):
- `exif_data`: tag name -> JSON value, flat (primary IFD, Exif IFD and GPS tags); rationals as
  floats, short binary fields as hex, longer ones as "<N bytes>"; GPS tags are dropped when the
  latitude is all zeros (a camera's placeholder).
- colours are computed on a copy whose long side is at most 512 px (Lanczos), over the pixels
  with alpha >= 128; `rgb` is in [0, 1] and `hex` is "#rrggbb".
- `avg_color`: arithmetic mean, or geometric mean (exp of the mean log, values floored at 1e-8
  on the 0..255 scale, as the seed's Python reference).
- `dominant_color`: pixels binned by int(10*h), int(10*s), int(10*v) in HSV; the fullest bin
  wins (ties: the lowest bin) and its first pixel in scan order is reported. Unlike the seed, the
  bin key cannot collide (the seed's h*1000 + s*10 + v merges e.g. near-white with near-black).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import ExifTags, Image

from gateway.errors import InvalidRequest
from gateway.media.decode import DEFAULT_IMAGE_POLICY, load_image, orient, to_8bit
from gateway.media.policy import ImagePolicy

AveragingMethod = Literal["arithmetic", "geometric"]
AVERAGING_METHODS: tuple[str, ...] = ("arithmetic", "geometric")
THUMBNAIL_SIZE = 512
ALPHA_THRESHOLD = 128
GEOMETRIC_EPS = 1e-8
_POINTER_TAGS = {int(ExifTags.IFD.Exif), int(ExifTags.IFD.GPSInfo), int(ExifTags.IFD.Interop)}
_SHORT_BINARY = 32


@dataclass(frozen=True)
class ColorInfo:
    rgb: tuple[float, float, float]
    hex: str


@dataclass(frozen=True)
class AverageColor(ColorInfo):
    method: str


@dataclass(frozen=True)
class ColorData:
    avg_color: AverageColor
    dominant_color: ColorInfo


@dataclass(frozen=True)
class ImageStats:
    exif_data: dict[str, Any]
    # None when no pixel is opaque enough to count.
    color_data: ColorData | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def image_stats(
    data: bytes,
    *,
    averaging_method: str = "arithmetic",
    policy: ImagePolicy = DEFAULT_IMAGE_POLICY,
    param: str = "content",
) -> ImageStats:
    """Statistics of one encoded image (blocking: call it from a worker thread)."""
    check_averaging_method(averaging_method)
    stored = load_image(data, policy, param=param)
    exif = exif_fields(stored)
    pixels = opaque_pixels(to_8bit(orient(stored)))
    return ImageStats(exif, color_data(pixels, averaging_method))


def check_averaging_method(averaging_method: str) -> None:
    """Refuse an unknown method; callers run it before fetching, so a typo answers at once."""
    if averaging_method not in AVERAGING_METHODS:
        raise InvalidRequest(
            f"averaging_method must be one of {list(AVERAGING_METHODS)}, not {averaging_method!r}",
            param="averaging_method",
        )


# -- EXIF ----------------------------------------------------------------------------------------


def exif_fields(image: Image.Image) -> dict[str, Any]:
    try:
        exif = image.getexif()
        fields: dict[str, Any] = {}
        for tag, value in exif.items():
            if tag not in _POINTER_TAGS and tag in ExifTags.TAGS:
                fields[ExifTags.TAGS[tag]] = json_value(value)
        for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items():
            if tag in ExifTags.TAGS:
                fields[ExifTags.TAGS[tag]] = json_value(value)
        gps = {
            ExifTags.GPSTAGS[tag]: json_value(value)
            for tag, value in exif.get_ifd(ExifTags.IFD.GPSInfo).items()
            if tag in ExifTags.GPSTAGS
        }
    except Exception:  # unreadable EXIF: report none rather than refuse the image
        return {}
    if _gps_is_set(gps):
        fields.update(gps)
    return fields


def _gps_is_set(gps: dict[str, Any]) -> bool:
    latitude = gps.get("GPSLatitude")
    if not gps or latitude is None:
        return False
    values = latitude if isinstance(latitude, list) else [latitude]
    return any(isinstance(v, (int, float)) and abs(v) > 1e-4 for v in values)


def json_value(value: Any) -> Any:
    """An EXIF value as JSON: numbers, strings, lists of them."""
    if isinstance(value, bytes):
        return value.hex() if len(value) <= _SHORT_BINARY else f"<{len(value)} bytes>"
    if isinstance(value, str):
        return value.rstrip("\x00").strip()
    if isinstance(value, (tuple, list)):
        items = [json_value(v) for v in value]
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool | int):
        return int(value)
    if hasattr(value, "numerator") and hasattr(value, "denominator"):  # IFDRational
        return float(value.numerator) / value.denominator if value.denominator else 0.0
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


# -- colours -------------------------------------------------------------------------------------


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    if max(width, height) <= THUMBNAIL_SIZE:
        return width, height
    if width > height:
        return THUMBNAIL_SIZE, max(1, int(height * THUMBNAIL_SIZE / width))
    return max(1, int(width * THUMBNAIL_SIZE / height)), THUMBNAIL_SIZE


def opaque_pixels(image: Image.Image) -> np.ndarray:
    """uint8 [N, 3]: the thumbnail's pixels whose alpha is at least 128."""
    rgba = image.convert("RGBA")
    size = thumbnail_size(*rgba.size)
    if size != rgba.size:
        rgba = rgba.resize(size, Image.Resampling.LANCZOS)
    pixels = np.asarray(rgba).reshape(-1, 4)
    return pixels[pixels[:, 3] >= ALPHA_THRESHOLD, :3]


def to_hex(rgb: np.ndarray) -> str:
    r, g, b = (round(float(c) * 255) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def average_color(pixels: np.ndarray, method: str) -> np.ndarray:
    values = pixels.astype(np.float64)
    if method == "geometric":
        return np.asarray(np.exp(np.log(np.maximum(values, GEOMETRIC_EPS)).mean(axis=0)) / 255.0)
    return np.asarray(values.mean(axis=0) / 255.0)


def rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """colorsys.rgb_to_hsv over rows of [0, 1] floats."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    high = rgb.max(axis=1)
    delta = high - rgb.min(axis=1)
    gray = delta == 0
    safe = np.where(gray, 1.0, delta)
    s = np.where(high > 0, delta / np.where(high > 0, high, 1.0), 0.0)
    rc, gc, bc = (high - r) / safe, (high - g) / safe, (high - b) / safe
    h = np.where(r == high, bc - gc, np.where(g == high, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.where(gray, 0.0, (h / 6.0) % 1.0)
    return h, s, high


def dominant_color(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels.astype(np.float64) / 255.0
    h, s, v = rgb_to_hsv(rgb)
    keys = (
        (h * 10).astype(np.int64) * 10_000
        + (s * 10).astype(np.int64) * 100
        + (v * 10).astype(np.int64)
    )
    _bins, first, counts = np.unique(keys, return_index=True, return_counts=True)
    winner = int(np.argmax(counts))  # first maximum = lowest key among ties
    return np.asarray(rgb[first[winner]])


def color_data(pixels: np.ndarray, method: str) -> ColorData | None:
    if len(pixels) == 0:
        return None
    mean = average_color(pixels, method)
    dominant = dominant_color(pixels)
    return ColorData(
        avg_color=AverageColor(_triple(mean), to_hex(mean), method),
        dominant_color=ColorInfo(_triple(dominant), to_hex(dominant)),
    )


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))
