"""The token service: TEI's /tokenize, /decode and /embed_all.

Tokenizing and decoding read the model's tokenizer.json only (the model is not loaded); token
vectors run the model: per-token hidden states of a text embedder, or the token vectors of a
multivector (ColBERT) model through the embedding service.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from gateway.encoders import Capability, EncodeOptions, capabilities_of
from gateway.encoders.views import text_embedder
from gateway.errors import EmptyInput, InvalidRequest, ModelNotFound, UnsupportedInput
from gateway.inputs import TextInput
from gateway.manager import ModelManager
from gateway.registry import Registry
from gateway.services.checks import check_finite, check_inputs, check_task, too_long
from gateway.services.embedding import EmbeddingService
from gateway.services.types import EmbedRequest
from gateway.settings import Settings
from gateway.sources import ModelStore
from gateway.specs import AnySpec, ModelSpec


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


@dataclass
class TokenVectors:
    matrices: list[np.ndarray]
    truncated: list[int]


class TokenService:
    def __init__(
        self,
        registry: Registry,
        store: ModelStore,
        models: ModelManager,
        settings: Settings,
        embedding: EmbeddingService,
    ) -> None:
        self.registry = registry
        self.store = store
        self.models = models
        self.settings = settings
        self.embedding = embedding
        self._tokenizers: dict[Path, Tokenizer] = {}
        self._lock = threading.Lock()

    def _spec(self, model: str | None) -> AnySpec:
        return self.embedding.resolve(model or self.registry.default_model).spec

    def _tokenizer(self, spec: ModelSpec) -> Tokenizer:
        """The model's tokenizer.json, read once, without padding or truncation."""
        if "tokenizer" not in spec.files:
            raise UnsupportedInput(f"model '{spec.name}' has no tokenizer", param="model")
        if not self.store.is_present(spec):
            raise ModelNotFound(f"model '{spec.name}' not found, try pulling it first")
        path = self.store.path_of(spec, "tokenizer")
        with self._lock:
            if path not in self._tokenizers:
                tokenizer = Tokenizer.from_file(str(path))
                tokenizer.no_padding()
                tokenizer.no_truncation()
                self._tokenizers[path] = tokenizer
            return self._tokenizers[path]

    async def tokenize(
        self,
        model: str | None,
        texts: Sequence[str],
        task: str | None,
        special: bool,
        *,
        listed: bool = True,
    ) -> list[list[Token]]:
        """TEI's /tokenize: the counts and lengths /embed accepts (`inputs`, `listed`: whether
        the client sent a list, for naming an item)."""
        check_inputs([TextInput(t) for t in texts], self.settings, "inputs", listed=listed)
        spec = self._spec(model)
        task = check_task(spec, task)
        tokenizer = await asyncio.to_thread(self._tokenizer, spec)
        prefixes = spec.prefixes_for(texts, task)
        return [
            _tokens(tokenizer, prefix + text, special)
            for prefix, text in zip(prefixes, texts, strict=True)
        ]

    async def decode(
        self, model: str | None, rows: Sequence[Sequence[int]], skip_special: bool
    ) -> list[str]:
        tokenizer = await asyncio.to_thread(self._tokenizer, self._spec(model))
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        for index, ids in enumerate(rows):
            bad = [i for i in ids if not 0 <= i < size]
            if bad:
                where = f"ids[{index}]" if len(rows) > 1 else "ids"
                raise InvalidRequest(
                    f"{where} has token id {bad[0]}, outside the vocabulary (0..{size - 1})",
                    param="ids",
                )
        return list(
            tokenizer.decode_batch([list(r) for r in rows], skip_special_tokens=skip_special)
        )

    async def token_vectors(self, request: EmbedRequest) -> TokenVectors:
        """Per-token vectors of each input (TEI's /embed_all)."""
        spec = self._spec(request.model)
        capabilities = capabilities_of(spec)
        if Capability.MULTIVECTOR in capabilities:
            result = await self.embedding.embed(replace(request, model=spec.name))
            return TokenVectors(result.matrices or [], result.truncated)
        if Capability.EMBED_TEXT not in capabilities:
            hint = (
                "; POST /embed_sparse gives its sparse vectors"
                if Capability.EMBED_SPARSE in capabilities
                else ""
            )
            raise UnsupportedInput(f"model '{spec.name}' has no token vectors{hint}", param="model")
        texts = [x.text if isinstance(x, TextInput) else str(x) for x in request.inputs]
        if not texts:  # TEI refuses it too; token_states of nothing has no shape to stack
            raise EmptyInput(f"{request.input_param} cannot be empty", param=request.input_param)
        inputs = [TextInput(t) for t in texts]
        check_inputs(inputs, self.settings, request.input_param, listed=request.input_listed)
        options = EncodeOptions(task=check_task(spec, request.task))
        async with self.models.use(spec, request.keep_alive) as (model, _):
            encoder = text_embedder(model.encoder)
            items = await asyncio.to_thread(encoder.prepare, texts, options)
            cut = [i for i, item in enumerate(items) if item.truncated]
            if cut and not request.truncate:
                limit = encoder.token_limit(options)
                raise too_long(request.item(cut[0]), limit, param=request.input_param)
            # Outside the batcher: this route is for inspection, not throughput.
            matrices = await asyncio.to_thread(encoder.token_states, items)
        check_finite(*matrices)
        return TokenVectors(matrices, cut)


def _tokens(tokenizer: Tokenizer, text: str, special: bool) -> list[Token]:
    """TEI's tokens: `text` is the token's substring, `start`/`stop` its UTF-8 byte offsets (as
    TEI's into_tokens gives them; the tokenizers binding gives character offsets)."""
    encoding = tokenizer.encode(text, add_special_tokens=special)
    rows = zip(
        encoding.ids, encoding.tokens, encoding.special_tokens_mask, encoding.offsets, strict=True
    )
    at = None if text.isascii() else _byte_offsets(text)  # ASCII: a character is a byte
    return [
        Token(token_id, token, True, None, None)
        if is_special
        else Token(
            token_id,
            text[start:stop],
            False,
            start if at is None else at[start],
            stop if at is None else at[stop],
        )
        for token_id, token, is_special, (start, stop) in rows
    ]


def _byte_offsets(text: str) -> list[int]:
    """The UTF-8 byte offset of each character of `text`, and of its end."""
    return list(accumulate((_utf8_length(ord(char)) for char in text), initial=0))


def _utf8_length(point: int) -> int:
    return 1 if point < 0x80 else 2 if point < 0x800 else 3 if point < 0x10000 else 4
