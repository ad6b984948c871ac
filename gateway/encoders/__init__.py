"""Encoders: one pipeline per model kind (prepare -> run -> finish), behind `Encoder`."""

from __future__ import annotations

from gateway.encoders.base import (
    AnyEncoder,
    Capability,
    EncodeOptions,
    Encoder,
    Item,
    missing_capability,
)
from gateway.encoders.cross import CrossEncoder
from gateway.encoders.kinds import build_encoder, capabilities_of, encoder_class
from gateway.encoders.late import LateInteractionEncoder
from gateway.encoders.pairs import PairScorer, PreparedPairs
from gateway.encoders.sparse import SparseEncoder, SparseVector
from gateway.encoders.text import TextEncoder
from gateway.encoders.vision import VisionEncoder

__all__ = [
    "AnyEncoder",
    "Capability",
    "CrossEncoder",
    "EncodeOptions",
    "Encoder",
    "Item",
    "LateInteractionEncoder",
    "PairScorer",
    "PreparedPairs",
    "SparseEncoder",
    "SparseVector",
    "TextEncoder",
    "VisionEncoder",
    "build_encoder",
    "capabilities_of",
    "encoder_class",
    "missing_capability",
]
