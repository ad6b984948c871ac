"""A load-time check that a compiled graph computes numbers at all.

One bench run's OpenVINO bf16 compile of a BERT-base graph came out broken: fine up to 12
tokens, every output NaN from 16 on, a crash (SIGSEGV) from 64 or 128; the same file compiled
again was fine. Such a graph must not be cached and served. Two tiny runs at load (one row of 8
and one of 16 tokens, or one image of the graph's own size) cost milliseconds and catch it
before any client does, without reaching the lengths where it crashed. This is a guard, not a
proof: a compile broken only for longer inputs would pass it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.backends.base import BackendSession, TensorInfo
from gateway.backends.kv_cache import empty_past, is_past_input, past_refusal
from gateway.errors import ModelLoadError

# Shape-bucket lengths (buckets.py), so a bucketed graph sees real shapes; the broken graph
# above was fine at 8 tokens, NaN from 16 and crashed at 64 in one probe.
PROBE_TOKENS = (8, 16)
PROBE_SIDE = 224  # pixels, for image inputs whose size the graph leaves open

_NUMPY_TYPES = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}


def probe_feed(
    inputs: Sequence[TensorInfo], tokens: int = PROBE_TOKENS[0]
) -> dict[str, np.ndarray]:
    """One batch row per input: token ids and masks all 1, segment ids 0 (a graph may know only
    one segment), images 0, a decoder's KV cache empty (kv_cache.py)."""
    feed = {}
    for tensor in inputs:
        if is_past_input(tensor):
            feed[tensor.name] = empty_past(tensor, 1)
            continue
        dtype = _NUMPY_TYPES.get(tensor.type, np.float32)
        shape = []
        for axis, dim in enumerate(tensor.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif axis == 0:
                shape.append(1)
            else:
                shape.append(tokens if len(tensor.shape) == 2 else PROBE_SIDE)
        fill = 0 if np.issubdtype(dtype, np.floating) or "type" in tensor.name else 1
        feed[tensor.name] = np.full(shape, fill, dtype=dtype)
    return feed


def non_finite_outputs(session: BackendSession) -> list[str]:
    """Names of the float outputs that hold NaN or infinity for any probe input. A KV cache no
    empty cache can be made for is refused first, as the encoder refuses it (kv_cache.py)."""
    info = session.graph_info()
    refusal = past_refusal(info.inputs)
    if refusal is not None:
        raise ModelLoadError(refusal)
    has_tokens = any(len(tensor.shape) == 2 for tensor in info.inputs)
    broken: dict[str, None] = {}
    for tokens in PROBE_TOKENS if has_tokens else PROBE_TOKENS[:1]:
        outputs = session.run(None, probe_feed(info.inputs, tokens))
        for tensor, array in zip(info.outputs, outputs, strict=True):
            if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                broken[tensor.name] = None
    return list(broken)
