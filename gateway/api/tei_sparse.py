"""TEI's `POST /embed_sparse`: sparse lexical (SPLADE) vectors, as TEI's router answers them.

`{inputs: str | [str], truncate, truncation_direction: "right", prompt_name}` (and the gateway's
`model`, as on TEI's other routes here) answers `[[{"index": int, "value": f32}]]`, one list per
input, a single string included: the non-zero weights, indices ascending (TEI's `sparsify`).
Requests that name no model use the registry's sparse model. Inputs cut to the model's length
are named in X-Truncated-Inputs; `truncate: false` refuses them (422); an empty batch or an
empty string is TEI's Empty (400); a model that is not sparse is a 422 naming what it can do.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gateway.api.disconnect import unless_disconnected
from gateway.api.openapi_inputs import NEITHER_EMPTY, NOT_EMPTY, BodyContract
from gateway.api.responses import sparse_json, with_truncated
from gateway.api.tei_inputs import Inputs, check_direction, embedded_texts, task_of
from gateway.inputs import TextInput
from gateway.services import EmbedRequest, SparseService


class TeiEmbedSparseBody(msgspec.Struct):
    inputs: Inputs
    truncate: bool | None = None
    truncation_direction: str = "right"
    prompt_name: str | None = None
    model: str | None = None  # gateway extension: TEI serves one model

    contract: ClassVar[BodyContract] = BodyContract(
        {"inputs": NEITHER_EMPTY, "truncation_direction": NOT_EMPTY, "prompt_name": NOT_EMPTY}
    )


class SparseValue(msgspec.Struct):
    """One vocabulary id and its weight (TEI's SparseValue)."""

    index: int
    value: float


class TeiSparseController(Controller):
    path = "/"
    tags = ["TEI (text-embeddings-inference)"]

    @post("/embed_sparse", status_code=200, summary="Sparse (SPLADE) vectors of each input (TEI)")
    async def embed_sparse(
        self,
        data: JSONBody[TeiEmbedSparseBody],
        sparse: NamedDependency[SparseService],
        request: Request[Any, Any, Any],
    ) -> Response[list[list[SparseValue]]]:
        check_direction(data.truncation_direction)
        work = sparse.embed(
            EmbedRequest(
                model=data.model or "",  # empty: the registry's sparse model
                inputs=[TextInput(t) for t in embedded_texts(data.inputs)],
                task=task_of(data.prompt_name),
                truncate=True if data.truncate is None else data.truncate,
                input_param="inputs",
                input_listed=isinstance(data.inputs, list),
            )
        )
        result = await unless_disconnected(request.receive, work)
        return with_truncated(sparse_json(result.vectors), result.truncated)
