"""Model specs: the typed, validated facts of one registry.yaml entry, one struct per kind.

Owns every per-model fact as data: where the files come from, how the ONNX graph is fed, pooling,
normalization, Matryoshka widths, task prefixes, lifecycle defaults. Kind-neutral questions
(`context_length`, `vector_width`, `output_widths`, `paired_text_model`) are answered by each
struct, so code above the encoders never asks which kind a spec is.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import ClassVar, Literal

import msgspec

from gateway.spec_base import FactValue, FileRef, ModelSpec

__all__ = [
    "AnySpec",
    "CrossEncoderSpec",
    "FactValue",
    "FileRef",
    "ImageModelSpec",
    "LateModelSpec",
    "ModelKind",
    "ModelSpec",
    "SparseModelSpec",
    "TextModelSpec",
]

ModelKind = Literal["text", "image", "late", "cross-encoder", "sparse"]


class TextModelSpec(ModelSpec, frozen=True, tag="text"):
    """A sentence embedder: tokens -> hidden states -> one pooled vector per text."""

    dim: int = 0
    # Inputs are cut here when truncating (the length the model was trained at).
    max_tokens: int = 512
    # The longest input the graph takes (position embeddings); `truncate: false` accepts inputs
    # up to it, as Ollama accepts a model's full context. Default: max_tokens.
    max_positions: int | None = None
    # last: the state of each text's last real token (decoder embedders such as Qwen3-Embedding;
    # inputs are right-padded, so that is row `length - 1`).
    pooling: Literal["mean", "cls", "last"] = "mean"
    # A token the tokenizer appends to every input, replacing the tokenizer.json's own
    # post-processor (Qwen3-Embedding pools the state of `<|endoftext|>`; copies of its
    # tokenizer.json differ in whether they append it). None: the tokenizer.json as it is.
    end_token: str | None = None
    # Nomic v1.5: layer_norm (no affine) over the full width before Matryoshka slicing.
    layer_norm: bool = False
    normalize: bool = True
    # Advertised (recommended) Matryoshka widths; any width 1..dim is served on request.
    dimensions: list[int] = []
    prefixes: dict[str, str] = {}
    default_task: str | None = None

    required_files: ClassVar[tuple[str, ...]] = ("model", "tokenizer")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dim < 1:
            raise ValueError("dim (the native embedding width) is required")
        if self.max_tokens < 2:
            raise ValueError("max_tokens must be at least 2")
        if self.max_positions is not None and self.max_positions < self.max_tokens:
            raise ValueError("max_positions must be at least max_tokens")
        for width in self.dimensions:
            if not 1 <= width <= self.dim:
                raise ValueError(f"dimensions: {width} is not within 1..{self.dim}")
        if self.default_task is not None and self.default_task not in self.prefixes:
            raise ValueError(f"default_task {self.default_task!r} is not one of prefixes")
        if self.end_token == "":
            raise ValueError("end_token must be a token, or left out")

    @property
    def advertised_dimensions(self) -> list[int]:
        return sorted(set(self.dimensions) | {self.dim}, reverse=True)

    @property
    def position_limit(self) -> int | None:
        return self.max_positions or self.max_tokens

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.prefixes)

    def prefixes_for(self, texts: Sequence[str], task: str | None) -> list[str]:
        """The task prefix to put before each of `texts` (task None: the default task's). Empty
        for a text that already starts with one of the model's prefixes: Ollama adds none, so
        nomic's users write "search_query: ..." themselves, and a second prefix would embed
        neither recipe. That prefix also wins over a task the request names: it is what the
        text says. All at once: a model without prefixes costs nothing per text."""
        if not self.prefixes:
            return [""] * len(texts)
        own = tuple(prefix for prefix in self.prefixes.values() if prefix)
        task = task or self.default_task
        added = self.prefixes.get(task, "") if task else ""
        return ["" if text.startswith(own) else added for text in texts]

    @property
    def context_length(self) -> int | None:
        return self.max_tokens

    @property
    def vector_width(self) -> int | None:
        return self.dim

    @property
    def output_widths(self) -> list[int]:
        return self.advertised_dimensions

    def public_facts(self) -> dict[str, FactValue]:
        facts: dict[str, FactValue] = {
            "pooling": self.pooling,
            "layer_norm": self.layer_norm,
            "normalize": self.normalize,
            "prefixes": dict(self.prefixes),
            "default_task": self.default_task,
            "dimensions": self.advertised_dimensions,
        }
        return facts


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class ImageModelSpec(ModelSpec, frozen=True, tag="image"):
    """An image tower: pixels -> one pooled vector per image."""

    dim: int = 0
    image_size: int = 224
    # shortest_edge: resize the short side then center-crop; squash: resize to a square.
    resize: Literal["shortest_edge", "squash"] = "shortest_edge"
    resample: Literal["bicubic", "bilinear", "nearest", "lanczos"] = "bicubic"
    rescale: float = 1 / 255
    mean: list[float] = msgspec.field(default_factory=lambda: list(CLIP_MEAN))
    std: list[float] = msgspec.field(default_factory=lambda: list(CLIP_STD))
    # nchw_float: normalized float pixels; nhwc_uint8: raw RGB bytes (the graph normalizes).
    pixel_format: Literal["nchw_float", "nhwc_uint8"] = "nchw_float"
    pooling: Literal["cls", "mean", "none"] = "cls"
    normalize: bool = True
    # Advertised widths, as for text models; any width 1..dim is served on request.
    dimensions: list[int] = []
    # The text model whose vector space this one shares, and the task its texts use.
    text_model: str | None = None
    text_task: str = "query"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dim < 1:
            raise ValueError("dim (the native embedding width) is required")
        if len(self.mean) != 3 or len(self.std) != 3 or any(v <= 0 for v in self.std):
            raise ValueError("mean and std need three values each, std positive")
        for width in self.dimensions:
            if not 1 <= width <= self.dim:
                raise ValueError(f"dimensions: {width} is not within 1..{self.dim}")

    @property
    def advertised_dimensions(self) -> list[int]:
        return sorted(set(self.dimensions) | {self.dim}, reverse=True)

    @property
    def vector_width(self) -> int | None:
        return self.dim

    @property
    def output_widths(self) -> list[int]:
        return self.advertised_dimensions

    @property
    def paired_text_model(self) -> str | None:
        return self.text_model

    @property
    def paired_text_task(self) -> str | None:
        return self.text_task

    def public_facts(self) -> dict[str, FactValue]:
        return {
            "pooling": self.pooling,
            "normalize": self.normalize,
            "dimensions": self.advertised_dimensions,
        }


class LateModelSpec(ModelSpec, frozen=True, tag="late"):
    """A ColBERT-style encoder: one L2-normalized vector per token, scored by MaxSim.

    Settings follow PyLate's `config_sentence_transformers.json`. The graph either projects and
    normalizes inside (PyLate/next-plaid exports, output `output`), or emits hidden states and
    `files.projection` holds the Dense weight [dim, hidden] (.npy, .npz or .safetensors) that
    is applied outside. Without a projection the graph's own output is the token vector.
    """

    dim: int = 0
    # Marker tokens inserted after [CLS], looked up in the tokenizer exactly as written:
    # "[unused0]"/"[unused1]" (BERT vocab) or added tokens such as "[Q] " (trailing space and
    # all, as PyLate adds them). An empty string inserts no marker.
    query_prefix: str = "[unused0]"
    document_prefix: str = "[unused1]"
    query_length: int = 32
    document_length: int = 300
    do_query_expansion: bool = True
    attend_to_expansion_tokens: bool = False
    skiplist: list[str] = msgspec.field(default_factory=lambda: list(string.punctuation))
    default_task: str = "document"

    required_files: ClassVar[tuple[str, ...]] = ("model", "tokenizer")
    optional_files: ClassVar[tuple[str, ...]] = ("projection",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dim < 1:
            raise ValueError("dim (the token vector width) is required")
        if self.query_length < 3 or self.document_length < 3:
            raise ValueError("query_length and document_length must be at least 3")
        if self.default_task not in ("query", "document"):
            raise ValueError("default_task must be query or document")
        if self.attend_to_expansion_tokens and not self.do_query_expansion:
            # PyLate silently turns it off; a registry entry that asks for it is a mistake.
            raise ValueError("attend_to_expansion_tokens needs do_query_expansion")
        if any(not word for word in self.skiplist):
            raise ValueError("skiplist entries must be non-empty strings")
        known = (*self.required_files, *self.optional_files)
        for role in self.files:
            if role not in known:
                raise ValueError(f"files.{role} is not a file a late model uses ({known})")

    @property
    def tasks(self) -> tuple[str, ...]:
        return ("query", "document")

    @property
    def context_length(self) -> int | None:
        return self.document_length

    @property
    def vector_width(self) -> int | None:
        return self.dim

    def public_facts(self) -> dict[str, FactValue]:
        return {"default_task": self.default_task}


class CrossEncoderSpec(ModelSpec, frozen=True, tag="cross-encoder"):
    """A reranker that reads a (query, document) pair and emits one relevance logit.

    BERT-style sequence-pair input ([CLS] query [SEP] document [SEP], token types 0 then 1),
    truncated longest-first to max_tokens as transformers' tokenizers do, and a
    single-logit head (AutoModelForSequenceClassification with num_labels=1).
    """

    max_tokens: int = 512

    required_files: ClassVar[tuple[str, ...]] = ("model", "tokenizer")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_tokens < 4:
            raise ValueError("max_tokens must be at least 4 ([CLS], [SEP], [SEP] and a token)")

    @property
    def context_length(self) -> int | None:
        return self.max_tokens


class SparseModelSpec(ModelSpec, frozen=True, tag="sparse"):
    """A SPLADE encoder: a masked-language-model graph (token ids -> logits [batch, seq, vocab])
    whose logits pool into one weight per vocabulary id, answered as the non-zero (index,
    value) pairs.

    The pooling is sentence-transformers' SpladePooling, whose defaults (max, relu) are what
    SPLADE v2 and later (SPLADE++) use, as TEI and fastembed compute it: each logit of a
    non-padding token becomes log(1 + relu(x)) (`log1p_relu` applies log1p twice, OpenSearch's
    inference-free models), then the max (or the sum) over the text's tokens.
    """

    # Inputs are cut here when truncating (tokenizer_config.json's model_max_length).
    max_tokens: int = 512
    pooling: Literal["max", "sum"] = "max"
    activation: Literal["relu", "log1p_relu"] = "relu"
    # The graph's vocabulary width, checked at load when given (/api/show reports it).
    vocab_size: int | None = None

    required_files: ClassVar[tuple[str, ...]] = ("model", "tokenizer")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_tokens < 2:
            raise ValueError("max_tokens must be at least 2")
        if self.vocab_size is not None and self.vocab_size < 1:
            raise ValueError("vocab_size must be at least 1")

    @property
    def context_length(self) -> int | None:
        return self.max_tokens

    @property
    def vector_width(self) -> int | None:
        return self.vocab_size

    def public_facts(self) -> dict[str, FactValue]:
        return {"pooling": self.pooling, "activation": self.activation}


AnySpec = TextModelSpec | ImageModelSpec | LateModelSpec | CrossEncoderSpec | SparseModelSpec
