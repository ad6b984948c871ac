"""Encoders: one per model kind, all behind the `Encoder` contract."""

from __future__ import annotations

from pathlib import Path

from gateway.encoders.base import Encoder, Item
from gateway.encoders.text import TextEncoder
from gateway.registry import AnySpec, TextModelSpec
from gateway.runtime import Runtime

__all__ = ["Encoder", "Item", "TextEncoder", "build_encoder"]


def build_encoder(spec: AnySpec, paths: dict[str, Path], runtime: Runtime) -> Encoder:
    """Load the encoder for `spec` from its local files (blocking: call from a thread)."""
    if isinstance(spec, TextModelSpec):
        return TextEncoder(spec, paths, runtime)
    raise NotImplementedError(f"model {spec.name}: kind {spec.kind} is not supported")
