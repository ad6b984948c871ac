"""KV-cache inputs of decoder graphs exported for generation, and the empty cache they are fed.

Optimum and transformers.js export decoders (onnx-community/Qwen3-Embedding-0.6B-ONNX among
them) with the cache of earlier steps as inputs, `past_key_values.<layer>.key|value` of shape
[batch, kv_heads, past_length, head_dim], and ONNX Runtime wants every declared input fed. An
embedding is one fresh pass over the whole text, so its cache is empty: past_length 0, which
leaves attention to the text's own tokens (TEI's ORT backend feeds the same).

Some exports declare the cache's batch axis a static 1 rather than leaving it open; fed more
rows, such a graph fails every run (ONNX Runtime checks the declared size, OpenVINO's Concat
refuses the shape). `one_row_inputs` finds them at load, and their batches run a row at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.backends.base import GraphInfo, TensorInfo

PAST_PREFIX = "past_key_values."
PAST_RANK = 4  # [batch, kv_heads, past_length, head_dim]


def is_past_input(tensor: TensorInfo) -> bool:
    return tensor.name.startswith(PAST_PREFIX) and len(tensor.shape) == PAST_RANK


def past_inputs(graph: GraphInfo) -> tuple[TensorInfo, ...]:
    return tuple(tensor for tensor in graph.inputs if is_past_input(tensor))


def unsized_past_inputs(inputs: Sequence[TensorInfo]) -> list[str]:
    """Cache inputs whose head count or head width the graph leaves open: an empty cache of
    the right shape cannot be made for them."""
    return [
        tensor.name
        for tensor in inputs
        if is_past_input(tensor) and not all(isinstance(tensor.shape[axis], int) for axis in (1, 3))
    ]


# The cache element types an empty cache can be made in (numpy has no bfloat16).
PAST_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def unfed_past_types(inputs: Sequence[TensorInfo]) -> list[str]:
    """Cache inputs of an element type no empty cache is made in (bfloat16, say): fed float32
    they would fail every run, so the model is refused at load instead."""
    return [t.name for t in inputs if is_past_input(t) and t.type not in PAST_TYPES]


def past_refusal(inputs: Sequence[TensorInfo]) -> str | None:
    """Why no empty cache can be fed to these inputs, in the words every load refuses such a
    graph with (the encoder's check and the backends' load-time probe); None when one can."""
    unsized = unsized_past_inputs(inputs)
    if unsized:
        return (
            f"KV-cache inputs {unsized[:2]} leave their heads or head width open; export the "
            "graph without the cache (use_cache=False) or with static head sizes"
        )
    untyped = unfed_past_types(inputs)
    if untyped:
        return (
            f"KV-cache inputs {untyped[:2]} are neither float32 nor float16; export the graph "
            "without the cache (use_cache=False) or with a float cache"
        )
    return None


def one_row_inputs(inputs: Sequence[TensorInfo]) -> list[str]:
    """Cache inputs, and token inputs ([batch, sequence]: input_ids and the like), whose batch
    axis the graph fixes to 1 instead of leaving it open: such a graph takes one row a run."""
    return [
        tensor.name
        for tensor in inputs
        if (is_past_input(tensor) or len(tensor.shape) == 2) and tensor.shape[0] == 1
    ]


def empty_past(tensor: TensorInfo, batch: int) -> np.ndarray:
    """A zero-length cache for `tensor`: [batch, kv_heads, 0, head_dim] of its float type."""
    heads, width = tensor.shape[1], tensor.shape[3]
    if not isinstance(heads, int) or not isinstance(width, int):
        raise ValueError(f"input {tensor.name} leaves its heads or head width open")
    if tensor.type not in PAST_TYPES:
        raise ValueError(f"input {tensor.name} is {tensor.type}: no empty cache of that type")
    return np.zeros((batch, heads, 0, width), dtype=PAST_TYPES[tensor.type])
