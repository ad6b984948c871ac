"""What a decoder graph takes beside token ids and a mask: position ids, and an empty KV cache.

Positions count each row's real tokens from 0 (the attention mask's running sum, less one).
Rows are right-padded, so that is 0..length-1, as transformers numbers an unpadded text; the
padding repeats the last position, and under causal attention no real token sees padding, so a
text's states do not depend on how far its batch pads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.backends.kv_cache import empty_past, past_inputs, past_refusal
from gateway.errors import ModelLoadError
from gateway.runtime import GraphInfo, TensorInfo

POSITION_IDS = "position_ids"


def positions_from_mask(mask: np.ndarray) -> np.ndarray:
    """[batch, sequence] positions: 0, 1, ... over each row's real tokens."""
    positions: np.ndarray = np.maximum(np.cumsum(mask, axis=1, dtype=np.int64) - 1, 0)
    return positions


@dataclass(frozen=True)
class DecoderInputs:
    """The decoder inputs one graph declares (none for an encoder's graph)."""

    position_ids: str | None = None
    past: tuple[TensorInfo, ...] = ()

    @classmethod
    def of(cls, graph: GraphInfo, position_ids: str | None, model: str) -> DecoderInputs:
        """`position_ids`: the graph's name for it, if it takes one. A cache whose head count
        or width the graph leaves open, or of a type other than float32/float16, is refused:
        no empty cache fits it."""
        refusal = past_refusal(graph.inputs)
        if refusal is not None:
            raise ModelLoadError(f"model {model}: {refusal}")
        return cls(position_ids, past_inputs(graph))

    def add_to(self, feed: dict[str, np.ndarray], mask: np.ndarray) -> None:
        """Put the decoder inputs of a batch with attention `mask` into `feed`."""
        if self.position_ids is not None:
            feed[self.position_ids] = positions_from_mask(mask)
        for tensor in self.past:
            feed[tensor.name] = empty_past(tensor, mask.shape[0])
