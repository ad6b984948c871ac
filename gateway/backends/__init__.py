"""Compute backends behind one seam: ONNX Runtime (CPU, CUDA) and OpenVINO (CPU)."""

from gateway.backends.base import Backend, BackendSession, GraphInfo, Placement, TensorInfo
from gateway.backends.buckets import bucket_length


def session_placement(encoder: object) -> Placement | None:
    """How a loaded encoder's graph runs (None for an encoder without a backend session)."""
    placement = getattr(getattr(encoder, "session", None), "placement", None)
    return placement if isinstance(placement, Placement) else None


__all__ = [
    "Backend",
    "BackendSession",
    "GraphInfo",
    "Placement",
    "TensorInfo",
    "bucket_length",
    "session_placement",
]
