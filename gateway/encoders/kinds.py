"""The one place a registry kind becomes an encoder: spec type -> encoder class.

Everything else asks an encoder class (or a loaded encoder) what it can do through
`capabilities`, so adding a kind of model means a spec, an encoder and one line here.
"""

from __future__ import annotations

from pathlib import Path

from gateway.encoders.base import AnyEncoder, Capability
from gateway.encoders.cross import CrossEncoder
from gateway.encoders.late import LateInteractionEncoder
from gateway.encoders.text import TextEncoder
from gateway.encoders.vision import VisionEncoder
from gateway.runtime import Runtime
from gateway.specs import CrossEncoderSpec, ImageModelSpec, LateModelSpec, ModelSpec, TextModelSpec

# The kind switch. Each encoder's constructor takes its own spec type.
ENCODERS: dict[type[ModelSpec], type[AnyEncoder]] = {
    TextModelSpec: TextEncoder,
    ImageModelSpec: VisionEncoder,
    LateModelSpec: LateInteractionEncoder,
    CrossEncoderSpec: CrossEncoder,
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
