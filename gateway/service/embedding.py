"""The middle of the gateway: validate a request against its model, run it, shape the result.

API adapters build an EmbedRequest or RerankRequest from their wire format and render the result
back; they never see tensors. Encoders never see requests. Per model kind:
- text models embed texts (through the embedding cache);
- image models embed images, and texts with the text model of their space (nomic vision and
  nomic text), answered in input order;
- late-interaction models give one matrix per input, on routes that can carry matrices;
- every model that can score text pairs reranks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.cache import CachedEmbedding, EmbeddingCache
from gateway.concurrency import gather_or_cancel
from gateway.encoders.late import LateInteractionEncoder
from gateway.encoders.text import TextEncoder, postprocess
from gateway.encoders.vision import VisionEncoder, finish
from gateway.errors import InvalidRequest, UnsupportedInput
from gateway.inputs import ImageInput, TextInput, resolve_input
from gateway.manager import LoadedModel, ModelManager
from gateway.media import FetchPolicy, ImagePolicy, read_images
from gateway.registry import (
    ImageModelSpec,
    LateModelSpec,
    Registry,
    Resolved,
    TextModelSpec,
)
from gateway.rerank import RerankScores, rerank
from gateway.service.checks import (
    check_dimensions,
    check_finite,
    check_inputs,
    check_task,
    context_limit,
    too_long,
)
from gateway.service.types import EmbedRequest, EmbedResult, RerankRequest, RerankResult
from gateway.settings import Settings

# Below this many characters in a request, tokenizing on the event loop beats a thread hop.
INLINE_TOKENIZE_CHARS = 2048
LATE_MODEL_HINT = (
    "gives one vector per token; POST /v1/embeddings returns its multi-vector output, and "
    "POST /v1/rerank or /api/rerank ranks documents with it"
)


@dataclass
class _Part:
    """The vectors of some of a request's inputs, and where they go."""

    indices: list[int]
    vectors: np.ndarray
    tokens: list[int]
    truncated: list[int]
    load_seconds: float


class EmbeddingService:
    def __init__(
        self,
        registry: Registry,
        manager: ModelManager,
        settings: Settings,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.registry = registry
        self.manager = manager
        self.settings = settings
        self.cache = cache or EmbeddingCache(0)
        self.image_policy = ImagePolicy(
            max_pixels=settings.image_max_pixels, max_bytes=settings.image_max_bytes
        )
        self.fetch_policy = FetchPolicy.with_allow_list(
            settings.image_allow_hosts,
            enabled=settings.image_fetch,
            max_bytes=settings.image_max_bytes,
            connect_timeout=settings.image_connect_timeout,
            total_timeout=settings.image_fetch_timeout,
            max_redirects=settings.image_max_redirects,
            ca_file=settings.image_ca_file,
        )

    def resolve(self, name: str) -> Resolved:
        if not name or not name.strip():
            raise InvalidRequest("model is required", param="model")
        return self.registry.resolve(name)

    # -- embeddings ------------------------------------------------------------------------------

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        started = time.perf_counter()
        resolved = self.resolve(request.model)
        spec = resolved.spec
        inputs = [
            resolve_input(x, images_first=isinstance(spec, ImageModelSpec)) for x in request.inputs
        ]
        check_inputs(inputs, self.settings, request.input_param, listed=request.input_listed)
        task = check_task(spec, request.task or resolved.task)
        if isinstance(spec, LateModelSpec):
            result = await self._embed_late(spec, task, inputs, request)
        elif isinstance(spec, ImageModelSpec):
            result = await self._embed_mixed(spec, task, inputs, request)
        elif isinstance(spec, TextModelSpec):
            result = await self._embed_text_model(spec, task, inputs, request)
        else:
            raise UnsupportedInput(
                f"model '{spec.name}' is a cross-encoder: it scores query-document pairs; "
                "use POST /v1/rerank or /api/rerank",
                param="model",
            )
        result.total_seconds = time.perf_counter() - started
        return result

    async def _embed_text_model(
        self, spec: TextModelSpec, task: str | None, inputs: list[Any], request: EmbedRequest
    ) -> EmbedResult:
        images = [i for i, x in enumerate(inputs) if isinstance(x, ImageInput)]
        if images:
            vision = [s.name for s in self.registry if getattr(s, "text_model", None) == spec.name]
            hint = f"; images in its space go to {', '.join(vision)}" if vision else ""
            raise UnsupportedInput(
                f"{request.item(images[0])} is an image, and model '{spec.name}' embeds text "
                f"only{hint}",
                param=request.input_param,
            )
        dimensions = check_dimensions(spec, request.dimensions, request.dimensions_param)
        everything = list(range(len(inputs)))
        part = await self._text_part(spec, task, inputs, everything, dimensions, request)
        return EmbedResult(spec, part.vectors, part.tokens, part.truncated, part.load_seconds)

    async def _embed_mixed(
        self, spec: ImageModelSpec, task: str | None, inputs: list[Any], request: EmbedRequest
    ) -> EmbedResult:
        """Images with the image model, texts with the text model of the same space."""
        dimensions = check_dimensions(spec, request.dimensions, request.dimensions_param)
        image_at = [i for i, x in enumerate(inputs) if isinstance(x, ImageInput)]
        text_at = [i for i, x in enumerate(inputs) if isinstance(x, TextInput)]
        jobs: list[Awaitable[_Part]] = []
        if text_at:
            text_spec = self._space_text_model(spec, request, text_at[0])
            check_dimensions(text_spec, dimensions)
            text_task = check_task(text_spec, task or spec.text_task)
            jobs.append(self._text_part(text_spec, text_task, inputs, text_at, dimensions, request))
        if image_at:
            jobs.append(self._image_part(spec, inputs, image_at, dimensions, request))
        parts = await gather_or_cancel(jobs)
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

    def _space_text_model(
        self, spec: ImageModelSpec, request: EmbedRequest, first_text: int
    ) -> TextModelSpec:
        if spec.text_model is None:
            raise UnsupportedInput(
                f"{request.item(first_text)} is text, and model '{spec.name}' embeds images "
                "only (send images as http(s) URLs or data URLs)",
                param=request.input_param,
            )
        text_spec = self.registry.resolve(spec.text_model).spec
        assert isinstance(text_spec, TextModelSpec)  # the registry checks this at load
        return text_spec

    async def _text_part(
        self,
        spec: TextModelSpec,
        task: str | None,
        inputs: list[Any],
        indices: list[int],
        dimensions: int,
        request: EmbedRequest,
    ) -> _Part:
        texts = [inputs[i].text for i in indices]
        limit = context_limit(spec, request.truncate, request.context_length)
        async with self.manager.use(spec, request.keep_alive) as (model, load_seconds):
            entries = await self._pooled(model, texts, task, limit) if texts else []
            over = [k for k, entry in enumerate(entries) if entry.truncated]
            if over and not request.truncate:
                encoder = model.encoder
                assert isinstance(encoder, TextEncoder)
                count = await asyncio.to_thread(encoder.count_tokens, texts[over[0]], task=task)
                raise too_long(request.item(indices[over[0]]), limit, count, request.input_param)
        cut = [indices[k] for k in over]
        pooled = np.stack([e.vector for e in entries]) if entries else np.zeros((0, spec.dim))
        vectors = postprocess(
            pooled,
            layer_norm=spec.layer_norm,
            dimensions=dimensions,
            normalize=request.normalize and spec.normalize,
        )
        check_finite(vectors)
        return _Part(indices, vectors, [e.tokens for e in entries], cut, load_seconds)

    async def _pooled(
        self, model: LoadedModel, texts: list[str], task: str | None, limit: int
    ) -> list[CachedEmbedding]:
        """Pooled vectors of `texts` cut at `limit` tokens: from the cache where present (it
        holds vectors at the model's own max_tokens only), the rest run as one job."""
        encoder = model.encoder
        assert isinstance(encoder, TextEncoder)
        if self.cache.enabled and limit == encoder.spec.max_tokens:
            keys = [self.cache.key(model.digest, encoder.prefix(task), text) for text in texts]
            found = self.cache.get_many(model.spec.name, keys)
        else:  # no hashing on the hot path for a cache that is off
            keys, found = [], [None] * len(texts)
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            items = await _off_loop_if_large(
                encoder.tokenize, [texts[i] for i in missing], task=task, limit=limit
            )
            outputs = await model.batcher.submit(items)
            fresh = [
                CachedEmbedding(np.array(output, dtype=np.float32), item.length, item.truncated)
                for item, output in zip(items, outputs, strict=True)
            ]
            if keys:
                self.cache.put_many([keys[i] for i in missing], fresh)
            for index, entry in zip(missing, fresh, strict=True):
                found[index] = entry
        return found  # type: ignore[return-value]

    async def _image_part(
        self,
        spec: ImageModelSpec,
        inputs: list[Any],
        indices: list[int],
        dimensions: int,
        request: EmbedRequest,
    ) -> _Part:
        references = [inputs[i].reference for i in indices]
        async with self.manager.use(spec, request.keep_alive) as (model, load_seconds):
            encoder = model.encoder
            assert isinstance(encoder, VisionEncoder)
            items = await read_images(
                references,
                fetch=self.fetch_policy,
                image=self.image_policy,
                convert=encoder.prepare,
                param=request.input_param,
                indices=indices if request.input_listed else None,
            )
            outputs = await model.batcher.submit(items)
        vectors = finish(
            np.stack(outputs).astype(np.float32),
            dimensions=dimensions,
            normalize=request.normalize and spec.normalize,
        )
        check_finite(vectors)
        return _Part(indices, vectors, [0] * len(indices), [], load_seconds)

    async def _embed_late(
        self, spec: LateModelSpec, task: str | None, inputs: list[Any], request: EmbedRequest
    ) -> EmbedResult:
        if not request.multi_vector:
            raise UnsupportedInput(f"model '{spec.name}' {LATE_MODEL_HINT}", param="model")
        images = [i for i, x in enumerate(inputs) if isinstance(x, ImageInput)]
        if images:
            raise UnsupportedInput(
                f"{request.item(images[0])} is an image, and model '{spec.name}' embeds text only",
                param=request.input_param,
            )
        if request.dimensions not in (None, spec.dim):
            raise InvalidRequest(
                f"model '{spec.name}' gives {spec.dim}-dimensional token vectors; "
                "dimensions cannot change that",
                param="dimensions",
            )
        texts = [x.text for x in inputs]
        matrices: list[np.ndarray] = []
        items = []
        async with self.manager.use(spec, request.keep_alive) as (model, load_seconds):
            encoder = model.encoder
            assert isinstance(encoder, LateInteractionEncoder)
            if texts:
                task = task or spec.default_task
                items = await asyncio.to_thread(encoder.tokenize, texts, task=task)
                cut = [i for i, item in enumerate(items) if item.truncated]
                if cut and not request.truncate:
                    limit = spec.query_length if task == "query" else spec.document_length
                    raise too_long(request.item(cut[0]), limit, param=request.input_param)
                matrices = await model.batcher.submit(items)
        return EmbedResult(
            spec=spec,
            vectors=np.zeros((0, spec.dim), dtype=np.float32),
            token_counts=[item.text_tokens for item in items],
            truncated=[i for i, item in enumerate(items) if item.truncated],
            load_seconds=load_seconds,
            matrices=[np.asarray(m, dtype=np.float32) for m in matrices],
        )

    # -- rerank ----------------------------------------------------------------------------------

    async def rerank(self, request: RerankRequest) -> RerankResult:
        started = time.perf_counter()
        spec = self.resolve(request.model).spec
        if isinstance(spec, ImageModelSpec):
            raise UnsupportedInput(f"model '{spec.name}' embeds images; it cannot rerank text")
        if not request.query or not request.query.strip():
            raise InvalidRequest("query must be a non-empty string", param="query")
        if request.top_n is not None and request.top_n < 1:
            raise InvalidRequest("top_n must be at least 1", param="top_n")
        documents = [TextInput(d) for d in request.documents]
        check_inputs(documents, self.settings, request.documents_param)
        check_inputs([TextInput(request.query)], self.settings, "query", listed=False)
        if not request.documents:
            empty = np.zeros(0)
            return RerankResult(spec, [], empty, empty, 0, [], time.perf_counter() - started)
        async with self.manager.use(spec, request.keep_alive) as (model, _):
            scores: RerankScores = await rerank(
                model.encoder,
                model.batcher.submit,
                request.query,
                request.documents,
                truncate=request.truncate,
                scale="raw" if request.raw_scores else "normalized",
                documents_param=request.documents_param,
            )
        return RerankResult(
            spec=spec,
            order=scores.top(request.top_n),
            relevance=scores.relevance,
            raw=scores.raw,
            tokens=scores.tokens,
            truncated=scores.truncated,
            total_seconds=time.perf_counter() - started,
        )


async def _off_loop_if_large(
    tokenize: Callable[..., list[Any]], texts: list[str], **kwargs: Any
) -> list[Any]:
    """Tokenize in a worker thread, unless the texts are so short that the thread hop would
    cost more than the work (a short query tokenizes in ~30 us; a hop costs ~300 us)."""
    if sum(map(len, texts)) <= INLINE_TOKENIZE_CHARS:
        return tokenize(texts, **kwargs)
    return await asyncio.to_thread(tokenize, texts, **kwargs)
