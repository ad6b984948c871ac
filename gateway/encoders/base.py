"""The contract between the scheduler and an encoder.

An encoder turns client inputs into prepared items (tokens, pixels) off the event loop, and runs
one batch of prepared items through its graph. The Batcher only sees items and their lengths, so
one scheduler serves text, image and late-interaction models alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from gateway.registry import ModelSpec
from gateway.runtime import GraphInfo


class Item(Protocol):
    """A prepared input. `length` is what it costs in a padded batch (tokens, patches)."""

    @property
    def length(self) -> int: ...


class Encoder(ABC):
    """One loaded model: a session plus its pre- and post-processing."""

    spec: ModelSpec
    graph: GraphInfo

    @property
    def batch_invariant(self) -> bool:
        """False when an item's result depends on what it is batched with."""
        return not self.graph.dynamic_quantization

    @abstractmethod
    def run(self, items: Sequence[Item]) -> list[np.ndarray]:
        """Run one batch; one array per item, in order. Called on the inference thread."""

    def sample_items(self, count: int, tokens: int) -> list[Item] | None:
        """`count` made-up inputs of `tokens` tokens each, to time runs; None if not tokens."""
        return None

    def close(self) -> None:
        """Drop the session so its memory can be freed (the GC does the rest)."""
        self.__dict__.pop("session", None)
