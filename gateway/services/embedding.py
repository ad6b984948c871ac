"""The embedding service: validate a request against its model, run it, shape the result.

API routers build an EmbedRequest from their wire format and render the EmbedResult; they never
see tensors. The service asks what a model can do (its capabilities), never which kind it is:
- multivector models give one matrix per input, on routes that can carry matrices;
- image embedders take images, and texts through the text model of their space (nomic vision
  and nomic text), answered in input order;
- text embedders take texts, through the embedding cache (gateway.services.pipelines).
A model that can do none of these (a cross-encoder, a SPLADE model) is a 400 naming what it
can do and the route that serves it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import numpy as np

from gateway.cache import EmbeddingCache
from gateway.concurrency import gather_or_cancel
from gateway.encoders import Capability, EncodeOptions, capabilities_of, missing_capability
from gateway.encoders.views import multivector_encoder
from gateway.errors import InvalidRequest, UnsupportedInput
from gateway.inputs import ImageInput, TextInput, resolve_input
from gateway.manager import ModelManager
from gateway.media import FetchPolicy, ImagePolicy
from gateway.registry import Registry, Resolved
from gateway.services.checks import (
    check_dimensions,
    check_finite,
    check_inputs,
    check_task,
    context_limit,
    too_long,
)
from gateway.services.pipelines import Part, Pipelines, finish_off_loop
from gateway.services.types import EmbedRequest, EmbedResult, named_model
from gateway.settings import Settings
from gateway.specs import ModelSpec

LATE_MODEL_HINT = (
    "gives one vector per token; POST /v1/embeddings returns its multi-vector output, and "
    "POST /v1/rerank or /api/rerank ranks documents with it"
)
# No dense view of a SPLADE model: its vectors are vocabulary-wide (30522 for BERT), mostly
# zeros, scored by dot product unnormalized; no client of these routes expects that shape.
SPARSE_MODEL_HINT = (
    "its vectors are sparse (vocabulary id -> weight); POST /embed_sparse (TEI's route) "
    "returns them, and POST /v1/rerank or /api/rerank ranks documents with it"
)
RERANKER_HINT = "use POST /v1/rerank or /api/rerank to rank documents with it"


def width_of(spec: ModelSpec, request: EmbedRequest) -> int:
    """The width the request's vectors come in (its dimensions, checked against the model)."""
    return check_dimensions(
        spec,
        request.dimensions,
        request.dimensions_param,
        lenient=request.ignore_unusable_dimensions,
    )


class EmbeddingService:
    def __init__(
        self,
        registry: Registry,
        models: ModelManager,
        settings: Settings,
        cache: EmbeddingCache,
        fetch_policy: FetchPolicy,
        image_policy: ImagePolicy,
    ) -> None:
        self.registry = registry
        self.models = models
        self.settings = settings
        self.pipelines = Pipelines(models, cache, fetch_policy, image_policy)

    @property
    def default_model(self) -> str:
        return self.registry.default_model

    @property
    def default_image_model(self) -> str | None:
        return self.registry.default_image_model

    def resolve(self, name: str) -> Resolved:
        if named_model(name) is None:  # Infinity's placeholder: no model named
            name = self.default_model
        if not name or not name.strip():
            raise InvalidRequest("model is required", param="model")
        return self.registry.resolve(name)

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        started = time.perf_counter()
        resolved = self.resolve(request.model)
        spec = resolved.spec
        capabilities = capabilities_of(spec)
        images_first = Capability.EMBED_IMAGE in capabilities
        inputs = [resolve_input(x, images_first=images_first) for x in request.inputs]
        check_inputs(inputs, self.settings, request.input_param, listed=request.input_listed)
        task = check_task(spec, request.task or resolved.task)
        if Capability.MULTIVECTOR in capabilities:
            result = await self._embed_multivector(spec, task, inputs, request)
        elif Capability.EMBED_IMAGE in capabilities:
            result = await self._embed_mixed(spec, task, inputs, request)
        elif Capability.EMBED_TEXT in capabilities:
            result = await self._embed_texts(spec, task, inputs, request)
        else:
            hint = SPARSE_MODEL_HINT if Capability.EMBED_SPARSE in capabilities else RERANKER_HINT
            raise missing_capability(spec.name, capabilities, "embed", hint)
        result.total_seconds = time.perf_counter() - started
        return result

    async def _embed_texts(
        self, spec: ModelSpec, task: str | None, inputs: list[Any], request: EmbedRequest
    ) -> EmbedResult:
        images = [i for i, x in enumerate(inputs) if isinstance(x, ImageInput)]
        if images:
            vision = [s.name for s in self.registry if s.paired_text_model == spec.name]
            hint = f"; images in its space go to {', '.join(vision)}" if vision else ""
            raise UnsupportedInput(
                f"{request.item(images[0])} is an image, and model '{spec.name}' embeds text "
                f"only{hint}",
                param=request.input_param,
            )
        dimensions = width_of(spec, request)
        limit = context_limit(spec, request.truncate, request.context_length)
        options = EncodeOptions(task, dimensions, request.normalize, limit)
        everything = list(range(len(inputs)))
        part = await self.pipelines.texts(spec, inputs, everything, options, request)
        self.pipelines.served([part])
        return EmbedResult(spec, part.vectors, part.tokens, part.truncated, part.load_seconds)

    async def _embed_mixed(
        self, spec: ModelSpec, task: str | None, inputs: list[Any], request: EmbedRequest
    ) -> EmbedResult:
        """Images with the image model, texts with the text model of the same space."""
        dimensions = width_of(spec, request)
        image_at = [i for i, x in enumerate(inputs) if isinstance(x, ImageInput)]
        text_at = [i for i, x in enumerate(inputs) if isinstance(x, TextInput)]
        jobs: list[Awaitable[Part]] = []
        if text_at:
            text_spec = self._paired_text_model(spec, request, text_at[0])
            check_dimensions(text_spec, dimensions)
            text_task = check_task(text_spec, task or spec.paired_text_task)
            limit = context_limit(text_spec, request.truncate, request.context_length)
            options = EncodeOptions(text_task, dimensions, request.normalize, limit)
            jobs.append(self.pipelines.texts(text_spec, inputs, text_at, options, request))
        if image_at:
            options = EncodeOptions(None, dimensions, request.normalize)
            jobs.append(self.pipelines.images(spec, inputs, image_at, options, request))
        parts = await gather_or_cancel(jobs)
        self.pipelines.served(parts)  # the texts' lookups, once the images have theirs too
        vectors = np.zeros((len(inputs), dimensions), dtype=np.float32)
        tokens = [0] * len(inputs)
        for part in parts:
            vectors[part.indices] = part.vectors
            for index, count in zip(part.indices, part.tokens, strict=True):
                tokens[index] = count
        return EmbedResult(
            spec=spec,
            vectors=vectors,
            token_counts=tokens,
            truncated=sorted(i for part in parts for i in part.truncated),
            load_seconds=max((part.load_seconds for part in parts), default=0.0),
        )

    def _paired_text_model(
        self, spec: ModelSpec, request: EmbedRequest, first_text: int
    ) -> ModelSpec:
        if spec.paired_text_model is None:
            raise UnsupportedInput(
                f"{request.item(first_text)} is text, and model '{spec.name}' embeds images "
                "only (send images as http(s) URLs or data URLs)",
                param=request.input_param,
            )
        # The registry checked at load that it exists and embeds text.
        return self.registry.resolve(spec.paired_text_model).spec

    async def _embed_multivector(
        self, spec: ModelSpec, task: str | None, inputs: list[Any], request: EmbedRequest
    ) -> EmbedResult:
        if not request.multi_vector:
            raise UnsupportedInput(f"model '{spec.name}' {LATE_MODEL_HINT}", param="model")
        images = [i for i, x in enumerate(inputs) if isinstance(x, ImageInput)]
        if images:
            raise UnsupportedInput(
                f"{request.item(images[0])} is an image, and model '{spec.name}' embeds text only",
                param=request.input_param,
            )
        width = spec.vector_width or 0
        if request.dimensions not in (None, width):
            raise InvalidRequest(
                f"model '{spec.name}' gives {width}-dimensional token vectors; "
                "dimensions cannot change that",
                param="dimensions",
            )
        texts = [x.text for x in inputs]
        options = EncodeOptions(task=task)
        raw: list[np.ndarray] = []
        items: list[Any] = []
        async with self.models.use(spec, request.keep_alive) as (model, load_seconds):
            encoder = multivector_encoder(model.encoder)
            if texts:
                items = list(await asyncio.to_thread(encoder.prepare, texts, options))
                cut = [i for i, item in enumerate(items) if item.truncated]
                if cut and not request.truncate:
                    limit = encoder.token_limit(options)
                    raise too_long(request.item(cut[0]), limit, param=request.input_param)
                raw = await model.batcher.submit(items)
        matrices = await finish_off_loop(encoder.finish, raw, options)
        check_finite(*matrices)
        return EmbedResult(
            spec=spec,
            vectors=np.zeros((0, width), dtype=np.float32),
            token_counts=[item.tokens for item in items],
            truncated=[i for i, item in enumerate(items) if item.truncated],
            load_seconds=load_seconds,
            matrices=matrices,
        )
