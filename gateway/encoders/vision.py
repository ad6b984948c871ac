"""Image towers: prepare (resize/crop -> pixels) -> run (ONNX) -> finish (pool, slice, L2).

Every prepared image has the same shape, so a batch needs no padding: an image's `length` is a
constant, the token count of a ViT-B/16 at the crop size ((crop / 16)^2 + 1 = 197 at 224), which
keeps the Batcher's token budget meaningful beside text models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gateway.encoders.base import Capability, EncodeOptions, Encoder, own_rows
from gateway.encoders.pixels import (
    PixelFormat,
    Preprocessing,
    load_preprocessing,
    parse_preprocessor_config,
    resize_and_crop,
    to_pixels,
)
from gateway.encoders.text import pick_output, postprocess
from gateway.errors import ModelLoadError
from gateway.runtime import GraphInfo, Runtime, TensorInfo
from gateway.specs import ImageModelSpec

__all__ = [
    "ImagePreparer",
    "PreparedImage",
    "Preprocessing",
    "VisionEncoder",
    "finish",
    "image_preparer",
    "parse_preprocessor_config",
    "resize_and_crop",
    "to_pixels",
]

# Rank-2 outputs that hold the finished image vector, in order of preference.
POOLED_OUTPUTS = ("image_embeds", "embedding", "embeddings", "pooler_output", "sentence_embedding")
FLOAT_TYPES: dict[str, type[np.floating]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}
PATCH = 16  # the cost unit of an image: tokens of a ViT with 16-pixel patches


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """One image, resized and cropped, in the graph's pixel layout (CHW float or HWC uint8)."""

    pixels: np.ndarray
    length: int


@dataclass(frozen=True, slots=True)
class ImagePreparer:
    """Decoded image -> the graph's pixels. It needs the spec and the preprocessor config only,
    not the ONNX session: a request prepares its images before it takes the model."""

    preprocessing: Preprocessing
    layout: PixelFormat
    length: int

    def __call__(self, image: Image.Image) -> PreparedImage:
        """Blocking: call from a worker thread."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        square = resize_and_crop(image, self.preprocessing)
        return PreparedImage(to_pixels(square, self.preprocessing, self.layout), self.length)


def image_preparer(spec: ImageModelSpec, preprocessor: Path | None) -> ImagePreparer:
    """The preparer of `spec` from its files (ModelLoadError if the config is unusable). The
    layout is the registry's pixel_format, which a load checks against the graph's input."""
    preprocessing = load_preprocessing(spec, preprocessor)
    return ImagePreparer(
        preprocessing, spec.pixel_format, (preprocessing.crop_size // PATCH) ** 2 + 1
    )


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


class VisionEncoder(Encoder[Image.Image, PreparedImage, np.ndarray]):
    """An image tower described by an ImageModelSpec: decoded images -> [n, width]."""

    capabilities = frozenset({Capability.EMBED_IMAGE})
    spec: ImageModelSpec

    def __init__(self, spec: ImageModelSpec, paths: dict[str, Path], runtime: Runtime) -> None:
        self.spec = spec
        self.preparer = image_preparer(spec, paths.get("preprocessor"))
        self.preprocessing = self.preparer.preprocessing
        self.session, self.graph = runtime.load(paths["model"])
        self.pixel_input = detect_pixel_input(self.graph, spec, self.preprocessing.crop_size)
        # Exports often fix pixel_values' batch axis to 1 ([1, 3, H, W]): one image a run.
        self.one_row_inputs = tuple(
            t.name
            for t in self.graph.inputs
            if t.name == self.pixel_input.name and t.shape and t.shape[0] == 1
        )
        self.output_name, self.output_is_pooled = pick_image_output(self.graph, spec)
        width = next(t for t in self.graph.outputs if t.name == self.output_name).shape[-1]
        if isinstance(width, int) and width != spec.dim:
            raise ModelLoadError(
                f"model {spec.name}: output {self.output_name!r} is {width} wide but dim is "
                f"{spec.dim}"
            )
        self.item_length = self.preparer.length

    @property
    def layout(self) -> PixelFormat:
        return self.pixel_input.layout

    def prepare_image(self, image: Image.Image) -> PreparedImage:
        """One decoded image -> the graph's pixels (blocking: call from a worker thread)."""
        return self.preparer(image)

    def prepare(self, inputs: Sequence[Image.Image], options: EncodeOptions) -> list[PreparedImage]:
        return [self.prepare_image(image) for image in inputs]

    def run(self, items: Sequence[PreparedImage]) -> list[np.ndarray]:
        """Per image: its pooled vector (the graph's pooled row, or CLS or mean over its token
        rows), in a buffer of its own.

        Pooled here, on the device thread, as TextEncoder.run does: a request keeps its raw
        arrays until its last batch ends, and views into a batch's token states kept all of
        them alive (a ViT-B batch of 64 at 224 is [64, 197, 768]: 37 MiB), other requests'
        images included; one vector is 3 KiB.
        """
        if self.one_row_inputs and len(items) > 1:  # the graph takes one image a run
            return [vector for item in items for vector in self.run([item])]
        batch = np.stack([item.pixels for item in items]).astype(self.pixel_input.dtype, copy=False)
        (output,) = self.session.run([self.output_name], {self.pixel_input.name: batch})
        states = np.asarray(output, dtype=np.float32)
        if self.output_is_pooled:
            return own_rows(states)
        if self.spec.pooling == "mean":
            return [tokens.mean(axis=0) for tokens in states]
        return own_rows(states[:, 0])

    def pool(self, raw: Sequence[np.ndarray]) -> np.ndarray:
        """The pooled vectors `run` gave, as [n, width] float32."""
        if not raw:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        return np.stack(raw)

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> np.ndarray:
        """Pool, Matryoshka slice, L2 (unless the request or the registry turns it off)."""
        return finish(
            self.pool(raw),
            dimensions=options.dimensions or self.spec.dim,
            normalize=options.normalize and self.spec.normalize,
        )
