"""registry.yaml -> typed, validated model specs, and name resolution.

Every per-model fact lives here as data: where the files come from, how the ONNX graph is fed,
pooling, normalization, Matryoshka widths, task prefixes, lifecycle defaults. A bad entry fails
start-up with the entry's name and the field at fault.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import msgspec
import yaml

from gateway.errors import ModelNotFound
from gateway.units import parse_bytes, parse_duration

ModelKind = Literal["text", "image", "late", "cross-encoder"]
DEFAULT_TAG = "latest"
# How Ollama spells the full name of a library model: host/namespace/model:tag.
OLLAMA_NAME_PREFIXES = ("registry.ollama.ai/library/", "library/")


class RegistryError(ValueError):
    """registry.yaml is unreadable or an entry is invalid."""


class FileRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One file of a model: its path inside the source, and optionally another source."""

    path: str
    source: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ValueError("sha256 must be 64 lowercase hex characters")


class ModelSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Fields every kind of model has."""

    name: str
    files: dict[str, FileRef]
    source: str | None = None
    aliases: list[str] = []
    description: str = ""
    family: str = "bert"
    parameter_size: str = ""
    quantization: str = "F32"
    license: str | None = None
    # ONNX graph names, by role; auto-detected when omitted.
    inputs: dict[str, str] = {}
    output: str | None = None
    # Lifecycle.
    keep_alive: str | float | None = None
    pinned: bool = False
    memory_estimate: str | int | None = None
    # Scheduling; process-wide settings apply when omitted.
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None

    required_files: ClassVar[tuple[str, ...]] = ("model",)

    def __post_init__(self) -> None:
        for role in self.required_files:
            if role not in self.files:
                raise ValueError(f"files.{role} is required for a {self.kind} model")
        for role, ref in self.files.items():
            if ref.source is None and self.source is None:
                raise ValueError(f"files.{role} has no source and the model has none")
        if self.keep_alive is not None:
            parse_duration(self.keep_alive)
        if self.memory_estimate is not None:
            parse_bytes(self.memory_estimate)
        for knob in ("max_batch_size", "max_batch_tokens"):
            value = getattr(self, knob)
            if value is not None and value < 1:
                raise ValueError(f"{knob} must be at least 1")

    @property
    def kind(self) -> str:
        return type(self).__struct_config__.tag  # type: ignore[return-value]

    @property
    def keep_alive_seconds(self) -> float | None:
        return None if self.keep_alive is None else parse_duration(self.keep_alive)

    @property
    def memory_estimate_bytes(self) -> int | None:
        return None if self.memory_estimate is None else parse_bytes(self.memory_estimate)

    @property
    def tasks(self) -> tuple[str, ...]:
        return ()


class TextModelSpec(ModelSpec, frozen=True, tag="text"):
    """A sentence embedder: tokens -> hidden states -> one pooled vector per text."""

    dim: int = 0
    # Inputs are cut here when truncating (the length the model was trained at).
    max_tokens: int = 512
    # The longest input the graph takes (position embeddings); `truncate: false` accepts inputs
    # up to it, as Ollama accepts a model's full context. Default: max_tokens.
    max_positions: int | None = None
    pooling: Literal["mean", "cls"] = "mean"
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

    @property
    def advertised_dimensions(self) -> list[int]:
        return sorted(set(self.dimensions) | {self.dim}, reverse=True)

    @property
    def position_limit(self) -> int:
        return self.max_positions or self.max_tokens

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.prefixes)


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


AnySpec = TextModelSpec | ImageModelSpec | LateModelSpec | CrossEncoderSpec


class _RegistryFile(msgspec.Struct, forbid_unknown_fields=True):
    # Entries stay untyped here so that parse_entry's errors can name the entry.
    models: dict[str, Any]
    default_model: str | None = None
    default_image_model: str | None = None
    default_rerank_model: str | None = None
    preload: list[str] = []


@dataclass(frozen=True)
class Resolved:
    """A model name as a client sent it, resolved to a spec and an optional task."""

    spec: AnySpec
    task: str | None = None


def canonical_name(name: str) -> str:
    """Lower-case, without Ollama's default registry and namespace or the default tag:
    "registry.ollama.ai/library/All-MiniLM:latest" -> "all-minilm"."""
    name = name.strip().lower()
    for prefix in OLLAMA_NAME_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name.endswith(":" + DEFAULT_TAG):
        name = name[: -len(DEFAULT_TAG) - 1]
    return name


def tagged_name(name: str) -> str:
    """The name with a tag, as Ollama lists models: "all-minilm" -> "all-minilm:latest"."""
    return name if ":" in name else f"{name}:{DEFAULT_TAG}"


class Registry:
    """The validated contents of registry.yaml."""

    def __init__(
        self,
        models: dict[str, AnySpec],
        *,
        default_model: str | None = None,
        default_image_model: str | None = None,
        default_rerank_model: str | None = None,
        preload: list[str] | None = None,
        base_dir: Path = Path("."),
    ) -> None:
        if not models:
            raise RegistryError("registry has no models")
        self.models = models
        self.base_dir = base_dir
        self.default_model = default_model or next(iter(models))
        if self.default_model not in models:
            raise RegistryError(f"default_model {self.default_model!r} is not a model in it")
        images = [spec.name for spec in models.values() if isinstance(spec, ImageModelSpec)]
        self.default_image_model = default_image_model or (images[0] if images else None)
        if self.default_image_model is not None and self.default_image_model not in images:
            raise RegistryError(
                f"default_image_model {self.default_image_model!r} is not an image model in it"
            )
        rerankers = [s.name for s in models.values() if s.kind in ("late", "cross-encoder")]
        # Rerank requests that name no model (Cohere v1 allows it) use this one.
        self.default_rerank_model = default_rerank_model or (
            rerankers[0] if rerankers else self.default_model
        )
        if self.default_rerank_model not in models:
            raise RegistryError(f"default_rerank_model {self.default_rerank_model!r} is not in it")
        self._names = self._index_names()
        self._check_shared_spaces()
        self.preload = [self.resolve(name).spec.name for name in (preload or [])]

    def _check_shared_spaces(self) -> None:
        """An image model's text_model must be a text model producing vectors of its width."""
        for spec in self.models.values():
            if not isinstance(spec, ImageModelSpec) or spec.text_model is None:
                continue
            where = f"model {spec.name!r}: text_model {spec.text_model!r}"
            try:
                text = self.resolve(spec.text_model).spec
            except ModelNotFound:
                raise RegistryError(f"{where} is not a model in the registry") from None
            if not isinstance(text, TextModelSpec):
                raise RegistryError(f"{where} is not a text model")
            if text.dim != spec.dim:
                raise RegistryError(f"{where} has {text.dim} dimensions, this model {spec.dim}")
            if spec.text_task not in text.tasks and text.tasks:
                raise RegistryError(f"{where} has no task {spec.text_task!r}")

    @classmethod
    def load(cls, path: Path) -> Registry:
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise RegistryError(f"{path}: no such file") from None
        except yaml.YAMLError as exc:
            raise RegistryError(f"{path}: not valid YAML: {exc}") from None
        try:
            top = msgspec.convert(raw, _RegistryFile)
        except msgspec.ValidationError as exc:
            raise RegistryError(f"{path}: {exc}") from None
        models: dict[str, AnySpec] = {}
        for name, entry in top.models.items():
            models[name] = parse_entry(name, entry, where=str(path))
        try:
            return cls(
                models,
                default_model=top.default_model,
                default_image_model=top.default_image_model,
                default_rerank_model=top.default_rerank_model,
                preload=top.preload,
                base_dir=path.resolve().parent,
            )
        except ModelNotFound as exc:
            raise RegistryError(f"{path}: preload: {exc.message}") from None
        except RegistryError as exc:
            raise RegistryError(f"{path}: {exc}") from None

    def _index_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for spec in self.models.values():
            for alias in [spec.name, *spec.aliases]:
                key = canonical_name(alias)
                if names.get(key, spec.name) != spec.name:
                    raise RegistryError(
                        f"model {spec.name!r}: name {alias!r} is already used by {names[key]!r}"
                    )
                names[key] = spec.name
        return names

    def resolve(self, name: str) -> Resolved:
        """Find a model by name, alias or `name:task` (e.g. "nomic-embed-text:query")."""
        key = canonical_name(name)
        if key in self._names:
            return Resolved(self.models[self._names[key]])
        base, _, tag = key.rpartition(":")
        if base in self._names:
            spec = self.models[self._names[base]]
            if tag in spec.tasks:
                return Resolved(spec, task=tag)
        raise ModelNotFound(f"model '{name}' not found")

    def __iter__(self):
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)


def parse_entry(name: str, entry: Any, *, where: str = "registry") -> AnySpec:
    """One registry entry -> its spec; errors name the entry and the field."""
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: model {name!r}: expected a mapping of fields")
    if "name" in entry:
        raise RegistryError(f"{where}: model {name!r}: `name` is the entry's key, not a field")
    kinds = [spec.__struct_config__.tag for spec in get_args(AnySpec)]
    if entry.get("kind") not in kinds:
        problem = "is required" if "kind" not in entry else f"{entry['kind']!r} is not known"
        raise RegistryError(
            f"{where}: model {name!r}: kind {problem} (one of: {', '.join(map(str, kinds))})"
        )
    files = entry.get("files")
    if isinstance(files, dict):
        # A bare string is shorthand for {path: ...}. Each file is checked alone so that an
        # error names its role ("files.model"), which msgspec's path for dict values does not.
        refs = {}
        for role, ref in files.items():
            raw = {"path": ref} if isinstance(ref, str) else ref
            try:
                refs[role] = msgspec.convert(raw, FileRef)
            except msgspec.ValidationError as exc:
                raise RegistryError(f"{where}: model {name!r}: files.{role}: {exc}") from None
        entry = {**entry, "files": {role: msgspec.to_builtins(ref) for role, ref in refs.items()}}
    try:
        return msgspec.convert({"name": name, **entry}, AnySpec)
    except msgspec.ValidationError as exc:
        raise RegistryError(f"{where}: model {name!r}: {exc}") from None
