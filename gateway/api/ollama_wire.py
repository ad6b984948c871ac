"""Ollama's wire types, field for field as ollama/ollama serves them, and their converters.

Fields and defaults follow the Ollama server's source (api/types.go). Ollama's `capabilities`
list is derived from what an encoder can do: "embedding" for any embedder, "vision" for image
models, "rerank" for models that score pairs.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgspec

from gateway.api.openapi_inputs import NOT_EMPTY, BodyContract, integer_or_null, named
from gateway.encoders import Capability
from gateway.errors import InvalidRequest
from gateway.services.models import Loaded, ModelInfo, Shown
from gateway.specs import FactValue
from gateway.units import LONGEST_DURATION_SECONDS, parse_duration

# What Ollama reports for keep_alive < 0: now plus math.MaxInt64 nanoseconds (~292 years).
FOREVER = timedelta(seconds=LONGEST_DURATION_SECONDS)
EMBEDDERS = {Capability.EMBED_TEXT, Capability.EMBED_IMAGE, Capability.MULTIVECTOR}


class EmbedBody(msgspec.Struct):
    model: str
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int | float | str | bool | None = None
    keep_alive: float | str | None = None
    # Modelfile parameters (num_ctx, temperature, ...). LangChain sends a dozen of them, all null.
    options: dict[str, Any] | None = None

    # Ollama's rule: any integer width (one it cannot serve means the native width); a string
    # or float is refused with the model's range.
    contract: ClassVar[BodyContract] = BodyContract(
        {"model": NOT_EMPTY, "keep_alive": NOT_EMPTY, "dimensions": integer_or_null()}
    )


class EmbedResponse(msgspec.Struct, omit_defaults=True):
    model: str
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class EmbeddingsBody(msgspec.Struct):
    model: str
    prompt: str = ""
    keep_alive: float | str | None = None
    options: dict[str, Any] | None = None

    contract: ClassVar[BodyContract] = BodyContract({"model": NOT_EMPTY, "keep_alive": NOT_EMPTY})


# /api/show, /api/pull, /api/delete: the model by either spelling, one of them not empty.
MODEL_OR_NAME = BodyContract(any_of=(named("model"), named("name")))


class EmbeddingsResponse(msgspec.Struct):
    embedding: list[float]


class ModelDetails(msgspec.Struct):
    parent_model: str
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class ListedModel(msgspec.Struct, omit_defaults=True):
    name: str
    model: str
    modified_at: datetime
    size: int
    digest: str
    details: ModelDetails
    capabilities: list[str] | None = None


class TagsResponse(msgspec.Struct):
    models: list[ListedModel]


class ShowBody(msgspec.Struct):
    model: str = ""
    name: str = ""  # deprecated spelling, still sent by old clients
    verbose: bool = False

    contract: ClassVar[BodyContract] = MODEL_OR_NAME


class ShowResponse(msgspec.Struct):
    modelfile: str
    parameters: str
    template: str
    license: str
    details: ModelDetails
    model_info: dict[str, FactValue]
    capabilities: list[str]
    modified_at: datetime


class VersionResponse(msgspec.Struct):
    version: str


class PsModel(msgspec.Struct, omit_defaults=True):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: datetime
    size_vram: int
    context_length: int | None = None


class PsResponse(msgspec.Struct):
    models: list[PsModel]


class PullBody(msgspec.Struct):
    model: str = ""
    name: str = ""  # deprecated spelling
    insecure: bool = False
    stream: bool = True

    contract: ClassVar[BodyContract] = MODEL_OR_NAME


class PullStatus(msgspec.Struct, omit_defaults=True):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class DeleteBody(msgspec.Struct):
    model: str = ""
    name: str = ""

    contract: ClassVar[BodyContract] = MODEL_OR_NAME


def keep_alive_seconds(raw: float | str | None) -> float | None:
    if raw is None:
        return None
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="keep_alive") from None


def capability_names(capabilities: frozenset[Capability]) -> list[str]:
    names = []
    if capabilities & EMBEDDERS:
        names.append("embedding")
    if Capability.EMBED_IMAGE in capabilities:
        names.append("vision")
    if Capability.SCORE_PAIRS in capabilities:
        names.append("rerank")
    return names


def details_of(info: ModelInfo) -> ModelDetails:
    spec = info.spec
    return ModelDetails(
        parent_model="",
        format="onnx",
        family=spec.family,
        families=[spec.family],
        parameter_size=spec.parameter_size,
        quantization_level=spec.quantization,
    )


def listed(info: ModelInfo, digest: str) -> ListedModel:
    return ListedModel(
        name=info.name,
        model=info.name,
        modified_at=info.modified_at,
        size=info.size,
        digest=digest,
        details=details_of(info),
        capabilities=capability_names(info.capabilities),
    )


def shown(view: Shown) -> ShowResponse:
    info, spec = view.info, view.info.spec
    family = spec.family
    facts: dict[str, FactValue] = {"general.architecture": family, "general.file_type": "onnx"}
    if info.context_length is not None:
        facts[f"{family}.context_length"] = info.context_length
    if info.embedding_length is not None:
        facts[f"{family}.embedding_length"] = info.embedding_length
    facts["gateway.kind"] = spec.kind
    facts["gateway.sha256"] = view.digest
    for key, value in spec.public_facts().items():
        facts[f"gateway.{key}"] = value
    facts["gateway.batching"] = view.batching
    return ShowResponse(
        modelfile=f"# served by embedding-gateway from {spec.source or 'registry.yaml'}\n",
        parameters="",
        template="{{ .Prompt }}",
        license=spec.license or "",
        details=details_of(info),
        model_info=facts,
        capabilities=capability_names(info.capabilities),
        modified_at=info.modified_at,
    )


def expires_at(model: Loaded) -> datetime:
    now = datetime.now(UTC)
    if model.keep_alive == math.inf:
        return now + FOREVER
    if model.expires_at is None:  # busy: the timer starts when the last request ends
        return now + timedelta(seconds=model.keep_alive)
    return datetime.fromtimestamp(model.expires_at, UTC)


def ps_row(model: Loaded) -> PsModel:
    name = model.info.name
    return PsModel(
        name=name,
        model=name,
        size=model.memory_bytes,
        digest=model.digest,
        details=details_of(model.info),
        expires_at=expires_at(model),
        size_vram=model.memory_bytes if model.device == "cuda" else 0,
        context_length=model.info.context_length,
    )
