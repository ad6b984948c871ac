"""Hugging Face text-embeddings-inference (TEI) routes: /embed, /embed_all, /tokenize, /decode.

TEI serves one model; here they use the registry's default model, or the model named by the
gateway's extension field `model`. `POST /embed` is shared with nomic-api-rs, whose body has
`input`; TEI's has `inputs`, and the body decides (a body with `inputs` is TEI's).

- `/embed` `{inputs: str | [str], normalize=true, truncate, dimensions, prompt_name}` answers a
  bare `[[f32]]`. `prompt_name` names a task prefix (query, document, ...). `truncate` defaults to
  true (the gateway's default; TEI's comes from its --auto-truncate flag).
- `/embed_all` `{inputs, truncate, prompt_name}` answers `[[[f32]]]`: per-token hidden states of a
  text model, or the token vectors of a ColBERT model.
- `/tokenize` `{inputs, add_special_tokens=true, prompt_name}` answers
  `[[{id, text, special, start, stop}]]`; `/decode` `{ids, skip_special_tokens=true}` answers
  `[str]`. Both read the model's tokenizer.json only: the model is not loaded.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from litestar import Controller, Request, Response, post
from tokenizers import Tokenizer

from gateway.api.bodies import convert, json_body
from gateway.api.disconnect import unless_disconnected
from gateway.api.native import EmbedBody, embed_one
from gateway.api.openai import TASK_SYNONYMS
from gateway.api.responses import embedded, with_truncated
from gateway.core import Gateway
from gateway.encoders.text import TextEncoder
from gateway.errors import InvalidRequest, ModelNotFound, UnsupportedInput
from gateway.inputs import TextInput
from gateway.registry import AnySpec, LateModelSpec, TextModelSpec
from gateway.service import EmbedRequest
from gateway.service.checks import check_inputs, check_task, too_long
from gateway.token_ids import token_rows

Inputs = str | list[str]


class TeiEmbedBody(msgspec.Struct):
    inputs: Inputs
    normalize: bool = True
    truncate: bool | None = None
    truncation_direction: str = "right"
    prompt_name: str | None = None
    dimensions: int | float | str | bool | None = None
    model: str | None = None  # gateway extension: TEI serves one model


class TeiEmbedAllBody(msgspec.Struct):
    inputs: Inputs
    truncate: bool | None = None
    truncation_direction: str = "right"
    prompt_name: str | None = None
    model: str | None = None


class TokenizeBody(msgspec.Struct):
    inputs: Inputs
    add_special_tokens: bool = True
    prompt_name: str | None = None
    model: str | None = None


class DecodeBody(msgspec.Struct):
    ids: list[Any]  # [int] or [[int]]; checked by hand (msgspec unions hold one array type)
    skip_special_tokens: bool = True
    model: str | None = None


class SimpleToken(msgspec.Struct):
    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


def texts_of(inputs: Inputs) -> list[str]:
    return [inputs] if isinstance(inputs, str) else list(inputs)


def task_of(prompt_name: str | None) -> str | None:
    if prompt_name is None:
        return None
    task = TASK_SYNONYMS.get(prompt_name.strip().lower())
    if task is None:
        raise InvalidRequest(
            f"unknown prompt_name {prompt_name!r}; use one of {sorted(TASK_SYNONYMS)}",
            param="prompt_name",
        )
    return task


def check_direction(direction: str) -> None:
    if direction.lower() != "right":
        raise InvalidRequest(
            "truncation_direction must be right: inputs are cut at the end",
            param="truncation_direction",
        )


class _Tokenizers:
    """tokenizer.json files read once, without loading the model (for /tokenize and /decode)."""

    def __init__(self) -> None:
        self._by_path: dict[Path, Tokenizer] = {}
        self._lock = threading.Lock()

    def of(self, gw: Gateway, spec: AnySpec) -> Tokenizer:
        if "tokenizer" not in spec.files:
            raise UnsupportedInput(f"model '{spec.name}' has no tokenizer", param="model")
        if not gw.store.is_present(spec):
            raise ModelNotFound(f"model '{spec.name}' not found, try pulling it first")
        path = gw.store.path_of(spec, "tokenizer")
        with self._lock:
            if path not in self._by_path:
                tokenizer = Tokenizer.from_file(str(path))
                tokenizer.no_padding()
                tokenizer.no_truncation()
                self._by_path[path] = tokenizer
            return self._by_path[path]


TOKENIZERS = _Tokenizers()


def tokens_of(tokenizer: Tokenizer, text: str, add_special_tokens: bool) -> list[SimpleToken]:
    encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
    tokens = []
    for token_id, token, special, (start, stop) in zip(
        encoding.ids, encoding.tokens, encoding.special_tokens_mask, encoding.offsets, strict=True
    ):
        if special:
            tokens.append(SimpleToken(token_id, token, True, None, None))
        else:
            tokens.append(SimpleToken(token_id, text[start:stop], False, start, stop))
    return tokens


async def tei_embed(data: TeiEmbedBody, gw: Gateway, request: Request[Any, Any, Any]) -> Any:
    check_direction(data.truncation_direction)
    work = gw.service.embed(
        EmbedRequest(
            model=data.model or gw.registry.default_model,
            inputs=[TextInput(text) for text in texts_of(data.inputs)],
            task=task_of(data.prompt_name),
            dimensions=data.dimensions,
            truncate=True if data.truncate is None else data.truncate,
            normalize=data.normalize,
            input_param="inputs",
            input_listed=isinstance(data.inputs, list),
        )
    )
    result = await unless_disconnected(request, work)
    return embedded(result.vectors.tolist(), result)


async def token_matrices(
    gw: Gateway, data: TeiEmbedAllBody, request: Request[Any, Any, Any]
) -> tuple[list[np.ndarray], list[int]]:
    """Token vectors of each input, and the indices of inputs that were cut."""
    texts = texts_of(data.inputs)
    listed = isinstance(data.inputs, list)
    truncate = True if data.truncate is None else data.truncate
    name = data.model or gw.registry.default_model
    spec = gw.service.resolve(name).spec
    task = task_of(data.prompt_name)
    if isinstance(spec, LateModelSpec):
        work = gw.service.embed(
            EmbedRequest(
                name,
                [TextInput(t) for t in texts],
                task,
                truncate=truncate,
                multi_vector=True,
                input_param="inputs",
                input_listed=listed,
            )
        )
        result = await unless_disconnected(request, work)
        return result.matrices or [], result.truncated
    if not isinstance(spec, TextModelSpec):
        raise UnsupportedInput(f"model '{spec.name}' has no token vectors", param="model")
    check_inputs([TextInput(t) for t in texts], gw.settings, "inputs", listed=listed)
    task = check_task(spec, task)
    async with gw.manager.use(spec, None) as (model, _):
        encoder = model.encoder
        assert isinstance(encoder, TextEncoder)
        items = await asyncio.to_thread(encoder.tokenize, texts, task=task)
        cut = [i for i, item in enumerate(items) if item.truncated]
        if cut and not truncate:
            where = f"inputs[{cut[0]}]" if listed else "inputs"
            raise too_long(where, spec.max_tokens, param="inputs")
        # Outside the batcher: this route is for inspection, not throughput.
        return await asyncio.to_thread(encoder.token_states, items), cut


async def embed_by_body(request: Request[Any, Any, Any], gw: Gateway) -> Any:
    """POST /embed (and POST /, as TEI, which huggingface_hub's InferenceClient posts to when
    given the server's URL): TEI's body has `inputs`, nomic-api-rs's has `input`."""
    raw = await json_body(request)
    if isinstance(raw, dict) and "inputs" in raw:
        return await tei_embed(convert(raw, TeiEmbedBody), gw, request)
    return await embed_one(convert(raw, EmbedBody), gw, request)


class TeiController(Controller):
    path = "/"
    tags = ["TEI (text-embeddings-inference)"]

    @post("/embed", status_code=200, summary="Embed: TEI's body (inputs) or nomic-api-rs's (input)")
    async def embed(self, request: Request[Any, Any, Any], gw: Gateway) -> Any:
        return await embed_by_body(request, gw)

    @post("/embed_all", status_code=200, summary="Token vectors of each input (TEI)")
    async def embed_all(
        self, data: TeiEmbedAllBody, gw: Gateway, request: Request[Any, Any, Any]
    ) -> Response[list[list[list[float]]]]:
        check_direction(data.truncation_direction)
        matrices, cut = await token_matrices(gw, data, request)
        return with_truncated([m.tolist() for m in matrices], cut)

    @post("/tokenize", status_code=200, summary="Tokenize with the model's tokenizer (TEI)")
    async def tokenize(self, data: TokenizeBody, gw: Gateway) -> list[list[SimpleToken]]:
        spec = gw.service.resolve(data.model or gw.registry.default_model).spec
        tokenizer = await asyncio.to_thread(TOKENIZERS.of, gw, spec)
        prefix = ""
        task = task_of(data.prompt_name)
        if isinstance(spec, TextModelSpec):
            prefix = spec.prefixes.get(check_task(spec, task) or "", "")
        texts = [prefix + text for text in texts_of(data.inputs)]
        return [tokens_of(tokenizer, text, data.add_special_tokens) for text in texts]

    @post("/decode", status_code=200, summary="Token ids back to text (TEI)")
    async def decode(self, data: DecodeBody, gw: Gateway) -> list[str]:
        spec = gw.service.resolve(data.model or gw.registry.default_model).spec
        tokenizer = await asyncio.to_thread(TOKENIZERS.of, gw, spec)
        rows = token_rows(data.ids, param="ids")
        if rows is None:
            raise InvalidRequest("ids must be a list of token ids, or a list of them", param="ids")
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        for index, ids in enumerate(rows):
            bad = [i for i in ids if not 0 <= i < size]
            if bad:
                where = f"ids[{index}]" if len(rows) > 1 else "ids"
                raise InvalidRequest(
                    f"{where} has token id {bad[0]}, outside the vocabulary (0..{size - 1})",
                    param="ids",
                )
        return tokenizer.decode_batch(rows, skip_special_tokens=data.skip_special_tokens)
