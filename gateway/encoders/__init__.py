"""Encoders: one per model kind, all behind the `Encoder` contract."""

from __future__ import annotations

from pathlib import Path

from gateway.encoders.base import Encoder, Item
from gateway.encoders.cross import CrossEncoder
from gateway.encoders.late import LateInteractionEncoder
from gateway.encoders.text import TextEncoder
from gateway.encoders.vision import VisionEncoder
from gateway.registry import (
    AnySpec,
    CrossEncoderSpec,
    ImageModelSpec,
    LateModelSpec,
    TextModelSpec,
)
from gateway.runtime import Runtime

__all__ = [
    "CrossEncoder",
    "Encoder",
    "Item",
    "LateInteractionEncoder",
    "TextEncoder",
    "VisionEncoder",
    "build_encoder",
]


def build_encoder(spec: AnySpec, paths: dict[str, Path], runtime: Runtime) -> Encoder:
    """Load the encoder for `spec` from its local files (blocking: call from a thread)."""
    runtime = runtime.for_model(spec)  # the model's own backend/precision, if it sets them
    if isinstance(spec, TextModelSpec):
        return TextEncoder(spec, paths, runtime)
    if isinstance(spec, LateModelSpec):
        return LateInteractionEncoder(spec, paths, runtime)
    if isinstance(spec, CrossEncoderSpec):
        return CrossEncoder(spec, paths, runtime)
    if isinstance(spec, ImageModelSpec):
        return VisionEncoder(spec, paths, runtime)
    raise NotImplementedError(f"model {spec.name}: kind {spec.kind} is not supported")
