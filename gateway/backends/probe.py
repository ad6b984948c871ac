"""A load-time check that a compiled graph computes numbers at all.

One bench run's OpenVINO bf16 compile of a BERT-base graph came out broken: every output NaN,
and a 256-token input crashed the process (SIGSEGV); the same file compiled again was fine. Such
a graph must not be cached and served. One tiny run at load (one 8-token row, or one image of
the graph's own size) costs milliseconds and catches it before any client does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.backends.base import BackendSession, TensorInfo

PROBE_TOKENS = 8  # a shape-bucket length (buckets.py), so a bucketed graph sees a real shape
PROBE_SIDE = 224  # pixels, for image inputs whose size the graph leaves open

_NUMPY_TYPES = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}


def probe_feed(inputs: Sequence[TensorInfo]) -> dict[str, np.ndarray]:
    """One batch row per input: token ids and masks all 1, segment ids 0 (a graph may know only
    one segment), images 0."""
    feed = {}
    for tensor in inputs:
        dtype = _NUMPY_TYPES.get(tensor.type, np.float32)
        shape = []
        for axis, dim in enumerate(tensor.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif axis == 0:
                shape.append(1)
            else:
                shape.append(PROBE_TOKENS if len(tensor.shape) == 2 else PROBE_SIDE)
        fill = 0 if np.issubdtype(dtype, np.floating) or "type" in tensor.name else 1
        feed[tensor.name] = np.full(shape, fill, dtype=dtype)
    return feed


def non_finite_outputs(session: BackendSession) -> list[str]:
    """Names of the float outputs that hold NaN or infinity for the probe input."""
    info = session.graph_info()
    outputs = session.run(None, probe_feed(info.inputs))
    return [
        tensor.name
        for tensor, array in zip(info.outputs, outputs, strict=True)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all()
    ]
