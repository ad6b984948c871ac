"""What each capability promises, as a typed view of a loaded encoder.

A service that holds a model for a request asks for the view of the capability it needs; the
view checks the encoder's declared `capabilities` (a 400 naming the model and what it can do
when it lacks it), so no caller ever tests which class an encoder is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np
from PIL import Image

from gateway.encoders.base import AnyEncoder, Capability, EncodeOptions, Item, missing_capability
from gateway.encoders.pairs import PairScorer
from gateway.encoders.sparse import SparseVector
from gateway.specs import ModelSpec


class TokenItem(Protocol):
    """A prepared text: its cost in a batch, the tokens it read, and whether it was cut."""

    @property
    def length(self) -> int: ...

    @property
    def tokens(self) -> int: ...

    @property
    def truncated(self) -> bool: ...


class TextEmbedder(Protocol):
    """EMBED_TEXT: texts -> one vector each, pooled first so pooled vectors can be cached."""

    @property
    def spec(self) -> ModelSpec: ...

    def prefixes_for(self, texts: Sequence[str], task: str | None) -> list[str]: ...

    def token_limit(self, options: EncodeOptions) -> int: ...

    def prepare(self, inputs: Sequence[str], options: EncodeOptions) -> Sequence[TokenItem]: ...

    def count_tokens(self, text: str, options: EncodeOptions) -> int: ...

    def token_states(self, items: Sequence[Any]) -> list[np.ndarray]: ...

    def finish_pooled(self, pooled: np.ndarray, options: EncodeOptions) -> np.ndarray: ...


class ImageEmbedder(Protocol):
    """EMBED_IMAGE: decoded images -> one vector each."""

    def prepare_image(self, image: Image.Image) -> Item: ...

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> np.ndarray: ...


class MultiVectorEncoder(Protocol):
    """MULTIVECTOR: texts -> one [tokens, width] matrix each."""

    def token_limit(self, options: EncodeOptions) -> int: ...

    def prepare(self, inputs: Sequence[str], options: EncodeOptions) -> Sequence[TokenItem]: ...

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> list[np.ndarray]: ...


class SparseEmbedder(Protocol):
    """EMBED_SPARSE: texts -> one SparseVector each (weights over the vocabulary)."""

    def token_limit(self, options: EncodeOptions) -> int: ...

    def prepare(self, inputs: Sequence[str], options: EncodeOptions) -> Sequence[TokenItem]: ...

    def count_tokens(self, text: str, options: EncodeOptions) -> int: ...

    def cache_variant(self, options: EncodeOptions) -> str: ...

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> list[SparseVector]: ...


def _require(encoder: AnyEncoder, capability: Capability, needed: str) -> None:
    if capability not in encoder.capabilities:
        raise missing_capability(encoder.spec.name, encoder.capabilities, needed)


def text_embedder(encoder: AnyEncoder) -> TextEmbedder:
    _require(encoder, Capability.EMBED_TEXT, "embed text")
    return cast(TextEmbedder, encoder)


def image_embedder(encoder: AnyEncoder) -> ImageEmbedder:
    _require(encoder, Capability.EMBED_IMAGE, "embed images")
    return cast(ImageEmbedder, encoder)


def multivector_encoder(encoder: AnyEncoder) -> MultiVectorEncoder:
    _require(encoder, Capability.MULTIVECTOR, "give token vectors")
    return cast(MultiVectorEncoder, encoder)


def sparse_embedder(encoder: AnyEncoder) -> SparseEmbedder:
    _require(encoder, Capability.EMBED_SPARSE, "give sparse vectors")
    return cast(SparseEmbedder, encoder)


def can_rank(capabilities: frozenset[Capability]) -> bool:
    """Models that score pairs natively, text embedders, which rank by cosine, and sparse
    (SPLADE) models, which rank by the dot product."""
    ranking = {Capability.SCORE_PAIRS, Capability.EMBED_TEXT, Capability.EMBED_SPARSE}
    return bool(capabilities & ranking)


def pair_scorer(encoder: AnyEncoder) -> PairScorer:
    if not can_rank(encoder.capabilities):
        raise missing_capability(encoder.spec.name, encoder.capabilities, "rerank text")
    return cast(PairScorer, encoder)
