"""Shape buckets: pad sequence inputs to fixed lengths so results do not depend on batch-mates.

OpenVINO picks kernels by shape: a text padded to 23 tokens and the same text padded to 40
gave vectors 2e-3 apart, while at one padded length the result did not depend on the other
rows (measured on AMX CPUs, and re-measured for every model kind in the tests).
So a bucketed backend pads every sequence to the bucket of the batch's longest member, and the
batcher draws each batch from one bucket: a text then sees the same padded length alone and in
any batch. Steps grow with length, keeping the added padding to about 1/8 of the bucket.

A placement may ask for coarser steps past 16 tokens (`Placement.bucket_step`): OpenVINO bf16 on
AMX costs the same at 24 as at 32 tokens, at 40 as at 48, at 56 as at 64 (per text, MiniLM and
BERT-base, batches of 8 to 32), so 8-token steps there only split the queue into more, smaller
batches. (fp32 costs grow with every 8 tokens; it keeps the fine steps.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.backends.base import Placement

# (up to this length, step): 8-token steps to 64, then 16 to 128, 32 to 256, 64 to 512, 128.
STEPS = ((64, 8), (128, 16), (256, 32), (512, 64))
LAST_STEP = 128


FINE_UP_TO = 16  # lengths up to this keep 8-token steps whatever the placement asks


def bucket_length(length: int, step: int = 8) -> int:
    """The padded length of a sequence of `length` tokens (at least 1); `step` is the
    smallest step past 16 tokens."""
    length = max(int(length), 1)
    for limit, default_step in STEPS:
        if length <= limit:
            size = default_step if length <= FINE_UP_TO else max(default_step, step)
            return -(-length // size) * size
    return -(-length // LAST_STEP) * LAST_STEP


def sequence_inputs(feed: dict[str, np.ndarray]) -> list[str]:
    """Token inputs: integer arrays of [batch, sequence]."""
    return [name for name, array in feed.items() if array.ndim == 2 and array.dtype.kind in "iu"]


def pad_feed(feed: dict[str, np.ndarray], step: int = 8) -> tuple[dict[str, np.ndarray], int, int]:
    """(feed padded to the bucket, original length, padded length).

    Padding is 0 in every token input, so the attention mask hides it; what id a hidden
    position holds does not reach the real positions.
    """
    names = sequence_inputs(feed)
    if not names:
        return feed, 0, 0
    length = feed[names[0]].shape[1]
    if any(feed[name].shape[1] != length for name in names):
        return feed, 0, 0  # not one sequence axis: leave the feed as it is
    padded = bucket_length(length, step)
    if padded == length:
        return feed, length, padded
    out = dict(feed)
    for name in names:
        array = feed[name]
        wider = np.zeros((array.shape[0], padded), dtype=array.dtype)
        wider[:, :length] = array
        out[name] = wider
    return out, length, padded


def pad_for(
    placement: Placement, feed: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], int, int]:
    """`pad_feed` with the placement's step when it is bucketed; the feed as it is otherwise.
    Sessions pad here, and the batcher cuts with the same step, so the two always agree."""
    if not placement.bucketed:
        return feed, 0, 0
    return pad_feed(feed, placement.bucket_step)


def trim_outputs(outputs: Sequence[np.ndarray], length: int, padded: int) -> list[np.ndarray]:
    """Cut per-token outputs ([batch, padded, ...]) back to the length the caller sent."""
    if padded == length:
        return list(outputs)
    return [
        array[:, :length] if array.ndim >= 3 and array.shape[1] == padded else array
        for array in outputs
    ]
