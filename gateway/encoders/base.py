"""The encoder contract: one pipeline per model kind, in three steps, and what it can do.

- `prepare(inputs, options)`: client inputs -> items (tokens, markers, pixels); any thread.
- `run(items)`: one padded batch through the runtime -> one raw array per item, un-padded. The
  only step that touches the runtime; the Batcher calls it on the device thread and sees
  nothing else.
- `finish(raw, options)`: raw arrays -> what the client gets (pooling, layer norm, Matryoshka
  slice, normalization, multi-vector packing, sparse (index, value) pairs).
An encoder declares its `capabilities`; services ask for a capability, never for a kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from gateway.errors import ModelLoadError, UnsupportedInput
from gateway.runtime import GraphInfo, TensorInfo
from gateway.specs import ModelSpec

InputT = TypeVar("InputT", contravariant=True)
ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT", covariant=True)


class Capability(StrEnum):
    EMBED_TEXT = "embed_text"  # text -> one vector
    EMBED_IMAGE = "embed_image"  # image -> one vector
    MULTIVECTOR = "multivector"  # text -> one vector per token
    SCORE_PAIRS = "score_pairs"  # (query, document) -> relevance, natively
    EMBED_SPARSE = "embed_sparse"  # text -> weights over the vocabulary (SPLADE)


class Item(Protocol):
    """A prepared input. `length` is what it costs in a padded batch (tokens, patches)."""

    @property
    def length(self) -> int: ...


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    """What a request asks of the pipeline beyond its inputs."""

    task: str | None = None  # a registry task (prefix or marker); None: the model's default
    dimensions: int | None = None  # Matryoshka width; None: the native width
    normalize: bool = True  # False: Ollama's legacy route wants raw (still layer-normed) vectors
    # Tokens an input may use (Ollama's num_ctx, or truncate: false up to max_positions);
    # None: the model's own cut (max_tokens).
    limit: int | None = None


class Encoder(ABC, Generic[InputT, ItemT, OutT]):
    """One loaded model: its session plus the pipeline around it."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    spec: ModelSpec
    graph: GraphInfo
    session: Any  # the runtime's session: run() is its only caller
    # Graph inputs whose batch axis is a static 1 (kv_cache.one_row_inputs): the graph takes one
    # row a run, so `run` runs a batch's items one at a time (text.py finds them for token
    # graphs). Vectors are the same; throughput is a batch of one's.
    one_row_inputs: tuple[str, ...] = ()

    @property
    def batch_invariant(self) -> bool:
        """False when an item's result depends on what it is batched with."""
        return not self.graph.dynamic_quantization

    @abstractmethod
    def prepare(self, inputs: Sequence[InputT], options: EncodeOptions) -> list[ItemT]:
        """Client inputs -> items, each saying what it costs and whether it was cut."""

    @abstractmethod
    def run(self, items: Sequence[ItemT]) -> list[np.ndarray]:
        """One batch through the runtime; one un-padded raw array per item, in order."""

    @abstractmethod
    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> OutT:
        """Raw arrays of a request's items -> the request's outputs."""

    def sample_items(self, count: int, tokens: int) -> list[ItemT] | None:
        """`count` made-up inputs of `tokens` tokens each, to time runs; None if not tokens."""
        return None

    def release_memory(self) -> None:
        """Hand back the working memory the runtime keeps from its largest runs (on the
        device thread, while no run is going)."""
        session = self.__dict__.get("session")
        if session is not None:
            session.release_memory()

    def close(self) -> None:
        """Drop the session so its memory can be freed (the GC does the rest)."""
        self.__dict__.pop("session", None)


AnyEncoder = Encoder[Any, Any, Any]


def own_rows(batch: np.ndarray) -> list[np.ndarray]:
    """The rows of a run's output, each copied into a buffer of its own: a request keeps its
    rows until its last batch ends, and a view would keep its batch mates' rows alive too."""
    return [np.array(row) for row in batch]


def describe_capabilities(capabilities: frozenset[Capability]) -> str:
    return ", ".join(sorted(capabilities)) or "nothing"


def missing_capability(
    model: str, capabilities: frozenset[Capability], needed: str, hint: str = ""
) -> UnsupportedInput:
    """The 400 for a request that needs what the model cannot do: names both."""
    tail = f"; {hint}" if hint else ""
    return UnsupportedInput(
        f"model '{model}' cannot {needed}: it can {describe_capabilities(capabilities)}{tail}",
        param="model",
    )


def find_output(
    graph: GraphInfo, configured: str | None, model: str, names: Sequence[str], rank: int
) -> TensorInfo | None:
    """The output the registry's `output` names (a name the graph lacks is refused), else the
    first of the usual `names` the graph has, else its first float output of `rank`; None when
    there is none. Each kind checks the shape of what it gets."""
    by_name = {t.name: t for t in graph.outputs}
    if configured is not None:
        if configured not in by_name:
            raise ModelLoadError(
                f"model {model}: output {configured!r} is not one of {sorted(by_name)}"
            )
        return by_name[configured]
    named = next((by_name[name] for name in names if name in by_name), None)
    return named or next((t for t in graph.outputs if t.is_float and len(t.shape) == rank), None)
