"""The one place a registry kind becomes an encoder: spec type -> encoder class.

Everything else asks an encoder class (or a loaded encoder) what it can do through
`capabilities`, so adding a kind of model means a spec, an encoder and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from gateway.encoders.base import AnyEncoder, Capability
from gateway.encoders.cross import CrossEncoder
from gateway.encoders.late import LateInteractionEncoder
from gateway.encoders.sparse import SparseEncoder
from gateway.encoders.text import TextEncoder
from gateway.encoders.vision import VisionEncoder, image_preparer
from gateway.runtime import Runtime
from gateway.specs import (
    CrossEncoderSpec,
    ImageModelSpec,
    LateModelSpec,
    ModelSpec,
    SparseModelSpec,
    TextModelSpec,
)

# The kind switch. Each encoder's constructor takes its own spec type.
ENCODERS: dict[type[ModelSpec], type[AnyEncoder]] = {
    TextModelSpec: TextEncoder,
    ImageModelSpec: VisionEncoder,
    LateModelSpec: LateInteractionEncoder,
    CrossEncoderSpec: CrossEncoder,
    SparseModelSpec: SparseEncoder,
}

# Kinds whose inputs can be prepared from the model's files before it loads (images: a request
# fetches and prepares them first, and takes the model only to run them).
Prepare = Callable[[Image.Image], Any]
PREPARERS: dict[type[ModelSpec], Callable[[Any, dict[str, Path]], Prepare]] = {
    ImageModelSpec: lambda spec, paths: image_preparer(spec, paths.get("preprocessor")),
}


def encoder_class(spec: ModelSpec) -> type[AnyEncoder]:
    try:
        return ENCODERS[type(spec)]
    except KeyError:
        raise NotImplementedError(f"model {spec.name}: kind {spec.kind} is not supported") from None


def capabilities_of(spec: ModelSpec) -> frozenset[Capability]:
    """What a model can do, known before it is loaded (services check requests with it)."""
    return encoder_class(spec).capabilities


def build_encoder(spec: ModelSpec, paths: dict[str, Path], runtime: Runtime) -> AnyEncoder:
    """Load the encoder for `spec` from its local files (blocking: call from a thread)."""
    runtime = runtime.for_model(spec)  # the model's own backend/precision, if it sets them
    cls = encoder_class(spec)
    return cls(spec, paths, runtime)  # type: ignore[call-arg]


def image_preparer_from_files(spec: ModelSpec, paths: dict[str, Path]) -> Prepare | None:
    """How `spec` turns a decoded image into its input, read from its files without loading it
    (blocking; ModelLoadError if they are unusable); None for kinds that take no images."""
    make = PREPARERS.get(type(spec))
    return None if make is None else make(spec, paths)
