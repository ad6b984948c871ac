"""registry.yaml -> validated model specs (gateway.specs), defaults, and name resolution.

Owns reading the file, checking each entry (a bad one fails start-up with the entry's name and
the field at fault), the registry-wide rules (default models, shared vector spaces, unique
names) and resolving a client's model name, alias or `name:task`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import msgspec
import yaml

from gateway.encoders.base import Capability
from gateway.encoders.kinds import capabilities_of
from gateway.errors import ModelNotFound
from gateway.request_context import note_model
from gateway.source_specs import SourceError, parse_source
from gateway.specs import (
    AnySpec,
    CrossEncoderSpec,
    FileRef,
    ImageModelSpec,
    LateModelSpec,
    ModelKind,
    ModelSpec,
    SparseModelSpec,
    TextModelSpec,
)

__all__ = [
    "AnySpec",
    "CrossEncoderSpec",
    "FileRef",
    "ImageModelSpec",
    "LateModelSpec",
    "ModelKind",
    "ModelSpec",
    "Registry",
    "RegistryError",
    "Resolved",
    "SparseModelSpec",
    "TextModelSpec",
    "canonical_name",
    "parse_entry",
    "tagged_name",
]

DEFAULT_TAG = "latest"
# How Ollama spells the full name of a library model: host/namespace/model:tag.
OLLAMA_NAME_PREFIXES = ("registry.ollama.ai/library/", "library/")


class RegistryError(ValueError):
    """registry.yaml is unreadable or an entry is invalid."""


class _RegistryFile(msgspec.Struct, forbid_unknown_fields=True):
    # Entries stay untyped here so that parse_entry's errors can name the entry.
    models: dict[str, Any]
    default_model: str | None = None
    default_image_model: str | None = None
    default_rerank_model: str | None = None
    default_sparse_model: str | None = None
    preload: list[str] = []


@dataclass(frozen=True)
class Resolved:
    """A model name as a client sent it, resolved to a spec and an optional task."""

    spec: AnySpec
    task: str | None = None


def names_with(specs: Iterable[ModelSpec], capability: Capability) -> list[str]:
    return [spec.name for spec in specs if capability in capabilities_of(spec)]


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
        default_sparse_model: str | None = None,
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
        images = names_with(models.values(), Capability.EMBED_IMAGE)
        self.default_image_model = default_image_model or (images[0] if images else None)
        if self.default_image_model is not None and self.default_image_model not in images:
            raise RegistryError(
                f"default_image_model {self.default_image_model!r} is not an image model in it"
            )
        rerankers = [
            s.name for s in models.values() if Capability.SCORE_PAIRS in capabilities_of(s)
        ]
        # Rerank requests that name no model (Cohere v1 allows it) use this one.
        self.default_rerank_model = default_rerank_model or (
            rerankers[0] if rerankers else self.default_model
        )
        if self.default_rerank_model not in models:
            raise RegistryError(f"default_rerank_model {self.default_rerank_model!r} is not in it")
        # TEI's /embed_sparse serves the sparse model when a request names none.
        sparse = names_with(models.values(), Capability.EMBED_SPARSE)
        self.default_sparse_model = default_sparse_model or (sparse[0] if sparse else None)
        if self.default_sparse_model is not None and self.default_sparse_model not in sparse:
            raise RegistryError(
                f"default_sparse_model {self.default_sparse_model!r} is not a sparse model in it"
            )
        self._names = self._index_names()
        self._check_shared_spaces()
        self.preload = [self.resolve(name).spec.name for name in (preload or [])]

    def _check_shared_spaces(self) -> None:
        """An image model's text_model must be a text model producing vectors of its width."""
        for spec in self.models.values():
            paired = spec.paired_text_model
            if paired is None:
                continue
            where = f"model {spec.name!r}: text_model {paired!r}"
            try:
                text = self.resolve(paired).spec
            except ModelNotFound:
                raise RegistryError(f"{where} is not a model in the registry") from None
            if Capability.EMBED_TEXT not in capabilities_of(text):
                raise RegistryError(f"{where} is not a text model")
            if text.vector_width != spec.vector_width:
                raise RegistryError(
                    f"{where} has {text.vector_width} dimensions, this model {spec.vector_width}"
                )
            task = spec.paired_text_task
            if task not in text.tasks and text.tasks:
                raise RegistryError(f"{where} has no task {task!r}")

    @classmethod
    def load(cls, path: Path) -> Registry:
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise RegistryError(f"{path}: no such file") from None
        except UnicodeDecodeError as exc:
            raise RegistryError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:  # a folder, no permission: one line from the CLI, not a traceback
            raise RegistryError(f"{path}: cannot read it ({exc.strerror or exc})") from None
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
                default_sparse_model=top.default_sparse_model,
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
        resolved = self._find(name)
        note_model(resolved.spec.name)  # the request's `model` metric label (the first named)
        return resolved

    def _find(self, name: str) -> Resolved:
        key = canonical_name(name)
        if key in self._names:
            return Resolved(self.models[self._names[key]])
        base, _, tag = key.rpartition(":")
        if base in self._names:
            spec = self.models[self._names[base]]
            if tag in spec.tasks:
                return Resolved(spec, task=tag)
        raise ModelNotFound(f"model '{name}' not found")

    def __iter__(self) -> Iterator[AnySpec]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)


def parse_entry(name: str, entry: Any, *, where: str = "registry") -> AnySpec:
    """One registry entry -> its spec; errors name the entry and the field."""
    problem = name_problem(name)
    if problem is not None:
        raise RegistryError(f"{where}: model {name!r}: the name {problem}")
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
        spec: AnySpec = msgspec.convert({"name": name, **entry}, AnySpec)
    except msgspec.ValidationError as exc:
        raise RegistryError(f"{where}: model {name!r}: {exc}") from None
    _check_sources(spec, where)
    return spec


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a model's name, or None. A name is also the model's folder under
    the models directory, so it must stay inside it and never be a dot-folder (the store's
    .cache, .locks): `namespace/name` and `name:tag` are fine, `..`, `/x`, `a//b` are not."""
    if not name.strip():
        return "is empty"
    if "\\" in name or "\0" in name:
        return "must not contain a backslash or a NUL character"
    if any(not part for part in name.split("/")):
        return "must not start or end with '/' or contain '//'"
    if any(part.startswith(".") for part in name.split("/")):
        return "must not have a part starting with '.' (such as '..')"
    return None


def _check_sources(spec: AnySpec, where: str) -> None:
    """Every source URI parses now, so that a bad one fails start-up, not every listing."""
    fields = [("source", spec.source)]
    fields += [(f"files.{role}.source", ref.source) for role, ref in spec.files.items()]
    for field, uri in fields:
        if uri is None:
            continue
        try:
            parse_source(uri, Path("."))
        except SourceError as exc:
            raise RegistryError(f"{where}: model {spec.name!r}: {field}: {exc}") from None
