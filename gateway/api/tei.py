"""Hugging Face text-embeddings-inference (TEI) routes: /embed, /embed_all, /embed_sparse,
/similarity, /tokenize, /decode.

TEI serves one model; here they use the registry's default model, or the model named by the
gateway's extension field `model`. `POST /embed` is shared with nomic-api-rs, whose body has
`input`; TEI's has `inputs`, and the body decides (a body with `inputs` is TEI's).

- `/embed` `{inputs: str | [str], normalize=true, truncate, dimensions, prompt_name}` answers a
  bare `[[f32]]`. `prompt_name` names a task prefix (query, document, ...). `truncate` defaults to
  true (the gateway's default; TEI's comes from its --auto-truncate flag).
- `/embed_all` `{inputs, truncate, prompt_name}` answers `[[[f32]]]`: per-token hidden states of a
  text model, or the token vectors of a ColBERT model.
- `/embed_sparse` `{inputs, truncate, prompt_name}` answers `[[{index, value}]]`: the non-zero
  weights of a SPLADE model (gateway/api/tei_sparse.py).
- `/similarity` `{inputs: {source_sentence, sentences}, parameters: {truncate, prompt_name}}`
  answers `[f32]`: the cosine of each sentence's vector with the source sentence's (the Hugging
  Face sentence-similarity task; POST / takes the same body, as TEI's does). Truncated
  sentences are named in X-Truncated-Inputs by their index in `sentences`, a truncated source
  by X-Truncated-Query: true.
- `/tokenize` `{inputs, add_special_tokens=true, prompt_name}` answers
  `[[{id, text, special, start, stop}]]` (start, stop: UTF-8 byte offsets, as TEI's); `/decode`
  `{ids, skip_special_tokens=true}` answers `[str]`. Both read the model's tokenizer.json only:
  the model is not loaded.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, cast

import msgspec
from litestar import Controller, Request, Response, Router, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.api.bodies import convert, json_body
from gateway.api.deps import provide
from gateway.api.disconnect import Receive, unless_disconnected
from gateway.api.errors import TEI_ERRORS
from gateway.api.native import EmbedBody, EmbedResponse, embed_one
from gateway.api.openapi_inputs import NEITHER_EMPTY, NO_EMPTY_LIST, NOT_EMPTY, BodyContract
from gateway.api.responses import embedded, float_json, with_truncated
from gateway.api.tei_inputs import (
    Inputs,
    batch_of,
    check_direction,
    embedded_texts,
    task_of,
)
from gateway.api.tei_sparse import TeiSparseController
from gateway.errors import EmptyInput, InvalidRequest
from gateway.inputs import TextInput
from gateway.services import (
    EmbeddingService,
    EmbedRequest,
    EmbedResult,
    Services,
    TokenService,
)
from gateway.token_ids import token_rows


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

    contract: ClassVar[BodyContract] = BodyContract(
        {"inputs": NEITHER_EMPTY, "truncation_direction": NOT_EMPTY, "prompt_name": NOT_EMPTY}
    )


class SimilarityInputs(msgspec.Struct):
    source_sentence: str
    sentences: list[str]


class SimilarityParameters(msgspec.Struct):
    truncate: bool | None = None
    truncation_direction: str = "right"
    prompt_name: str | None = None


class TeiSimilarityBody(msgspec.Struct):
    inputs: SimilarityInputs
    parameters: SimilarityParameters | None = None
    model: str | None = None


class TokenizeBody(msgspec.Struct):
    inputs: Inputs
    add_special_tokens: bool = True
    prompt_name: str | None = None
    model: str | None = None

    # An empty batch is refused, an empty string is tokenized (to the special tokens).
    contract: ClassVar[BodyContract] = BodyContract(
        {"inputs": NO_EMPTY_LIST, "prompt_name": NOT_EMPTY}
    )


class DecodeBody(msgspec.Struct):
    ids: list[Any]  # [int] or [[int]]; checked by hand (msgspec unions hold one array type)
    skip_special_tokens: bool = True
    model: str | None = None

    contract: ClassVar[BodyContract] = BodyContract({"ids": NO_EMPTY_LIST})


class SimpleToken(msgspec.Struct):
    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


async def tei_embed_answer(
    data: TeiEmbedBody, embedding: EmbeddingService, receive: Receive
) -> tuple[list[list[float]], EmbedResult]:
    """POST /embed's answer to TEI's body (the handler's, and the fast lane's)."""
    check_direction(data.truncation_direction)
    texts = embedded_texts(data.inputs)
    listed = isinstance(data.inputs, list)
    work = embedding.embed(
        EmbedRequest(
            model=data.model or embedding.default_model,
            inputs=[TextInput(text) for text in texts],
            task=task_of(data.prompt_name),
            dimensions=data.dimensions,
            truncate=True if data.truncate is None else data.truncate,
            normalize=data.normalize,
            input_param="inputs",
            input_listed=listed,
        )
    )
    result = await unless_disconnected(receive, work)
    return float_json(result.vectors), result


async def tei_similarity_answer(
    data: TeiSimilarityBody, embedding: EmbeddingService, receive: Receive
) -> Response[list[float]]:
    """POST /similarity: the source sentence and the sentences embedded in one request (one
    batch, so each vector is what /embed gives it), then the cosine of each with the source."""
    parameters = data.parameters or SimilarityParameters()
    check_direction(parameters.truncation_direction)
    sentences = data.inputs.sentences
    if not sentences:
        raise EmptyInput("inputs.sentences cannot be empty", param="inputs.sentences")
    if data.inputs.source_sentence == "":
        raise EmptyInput("inputs.source_sentence is empty", param="inputs.source_sentence")
    if "" in sentences:
        where = f"inputs.sentences[{sentences.index('')}]"
        raise EmptyInput(f"{where} is empty", param="inputs.sentences")
    task = task_of(parameters.prompt_name)
    truncate = True if parameters.truncate is None else parameters.truncate

    def request(texts: list[str], param: str) -> EmbedRequest:
        return EmbedRequest(
            model=data.model or embedding.default_model,
            inputs=[TextInput(text) for text in texts],
            task=task,
            truncate=truncate,
            normalize=True,
            input_param=param,
            input_listed=param == "inputs.sentences",
        )

    # Two requests, so that errors name the field (the dynamic batcher runs them together).
    work = asyncio.gather(
        embedding.embed(request([data.inputs.source_sentence], "inputs.source_sentence")),
        embedding.embed(request(sentences, "inputs.sentences")),
    )
    # A ColBERT model is refused by the service (no single vector): these are unit vectors.
    source, others = await unless_disconnected(receive, work)
    cosines = others.vectors @ source.vectors[0]  # the vectors are unit length
    return with_truncated(float_json(cosines), others.truncated, bool(source.truncated))


def is_tei_similarity_body(raw: Any) -> bool:
    """POST / takes TEI's sentence-similarity body too: its `inputs` is an object."""
    return isinstance(raw, dict) and isinstance(raw.get("inputs"), dict)


# TEI's bare list of vectors, or nomic-api-rs's object: the body decides.
EmbedAnswer = Response[list[list[float]] | EmbedResponse]
# POST /: those, or the similarity body's cosines. One Response of a union, which the OpenAPI
# document describes; a union of Responses it leaves as an empty schema.
RootAnswer = Response[list[list[float]] | EmbedResponse | list[float]]


def is_tei_embed_body(raw: Any) -> bool:
    """On /embed and POST /: a JSON object with `inputs` is TEI's body, any other nomic-api-rs's
    (this route's rule, and the fast lane's)."""
    return isinstance(raw, dict) and "inputs" in raw


async def embed_by_body(
    request: Request[Any, Any, Any], embedding: EmbeddingService
) -> EmbedAnswer:
    """POST /embed: TEI's body has `inputs`, nomic-api-rs's has `input`."""
    return await _embed_decoded(await json_body(request), request, embedding)


async def root_answer(request: Request[Any, Any, Any], embedding: EmbeddingService) -> RootAnswer:
    """POST /, as TEI answers it (huggingface_hub's InferenceClient posts there when given the
    server's URL): /embed's two bodies, or a sentence-similarity body."""
    raw = await json_body(request)
    if is_tei_similarity_body(raw):
        body = convert(raw, TeiSimilarityBody)
        return cast(RootAnswer, await tei_similarity_answer(body, embedding, request.receive))
    return cast(RootAnswer, await _embed_decoded(raw, request, embedding))


async def _embed_decoded(
    raw: Any, request: Request[Any, Any, Any], embedding: EmbeddingService
) -> EmbedAnswer:
    if is_tei_embed_body(raw):
        vectors, result = await tei_embed_answer(
            convert(raw, TeiEmbedBody), embedding, request.receive
        )
        return cast(EmbedAnswer, embedded(vectors, result))
    return cast(EmbedAnswer, await embed_one(convert(raw, EmbedBody), embedding, request))


class TeiController(Controller):
    path = "/"
    tags = ["TEI (text-embeddings-inference)"]

    @post("/embed", status_code=200, summary="Embed: TEI's body (inputs) or nomic-api-rs's (input)")
    async def embed(
        self, request: Request[Any, Any, Any], embedding: NamedDependency[EmbeddingService]
    ) -> EmbedAnswer:
        return await embed_by_body(request, embedding)

    @post("/similarity", status_code=200, summary="Cosine of sentences with a source (TEI)")
    async def similarity(
        self,
        data: JSONBody[TeiSimilarityBody],
        embedding: NamedDependency[EmbeddingService],
        request: Request[Any, Any, Any],
    ) -> Response[list[float]]:
        return await tei_similarity_answer(data, embedding, request.receive)

    @post("/embed_all", status_code=200, summary="Token vectors of each input (TEI)")
    async def embed_all(
        self,
        data: JSONBody[TeiEmbedAllBody],
        tokens: NamedDependency[TokenService],
        request: Request[Any, Any, Any],
    ) -> Response[list[list[list[float]]]]:
        check_direction(data.truncation_direction)
        work = tokens.token_vectors(
            EmbedRequest(
                model=data.model or "",  # empty: the default model
                inputs=[TextInput(t) for t in embedded_texts(data.inputs)],
                task=task_of(data.prompt_name),
                truncate=True if data.truncate is None else data.truncate,
                multi_vector=True,
                input_param="inputs",
                input_listed=isinstance(data.inputs, list),
            )
        )
        vectors = await unless_disconnected(request.receive, work)
        return with_truncated([float_json(m) for m in vectors.matrices], vectors.truncated)

    @post("/tokenize", status_code=200, summary="Tokenize with the model's tokenizer (TEI)")
    async def tokenize(
        self, data: JSONBody[TokenizeBody], tokens: NamedDependency[TokenService]
    ) -> list[list[SimpleToken]]:
        rows = await tokens.tokenize(
            data.model,
            batch_of(data.inputs),
            task_of(data.prompt_name),
            data.add_special_tokens,
            listed=isinstance(data.inputs, list),
        )
        return [
            [SimpleToken(t.id, t.text, t.special, t.start, t.stop) for t in row] for row in rows
        ]

    @post("/decode", status_code=200, summary="Token ids back to text (TEI)")
    async def decode(
        self, data: JSONBody[DecodeBody], tokens: NamedDependency[TokenService]
    ) -> list[str]:
        if not data.ids:  # TEI's Empty, as for /tokenize's inputs (not "must be a list")
            raise EmptyInput("ids cannot be empty", param="ids")
        rows = token_rows(data.ids, param="ids")
        if rows is None:
            raise InvalidRequest("ids must be a list of token ids, or a list of them", param="ids")
        return await tokens.decode(data.model, rows, data.skip_special_tokens)


def tei_router(services: Services) -> Router:
    return Router(
        path="/",
        route_handlers=[TeiController, TeiSparseController],
        dependencies={
            "embedding": provide(services.embedding),
            "tokens": provide(services.tokens),
            "sparse": provide(services.sparse),
        },
        exception_handlers=TEI_ERRORS,
    )
