"""Validation of a request against its model and the process's limits (400s that say why)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.errors import EmptyInput, InputTooLong, InvalidRequest
from gateway.inputs import ImageInput, TextInput
from gateway.settings import Settings
from gateway.specs import ModelSpec


def check_task(spec: ModelSpec, task: str | None) -> str | None:
    if task is None or not spec.tasks or task in spec.tasks:
        return task
    raise InvalidRequest(
        f"model '{spec.name}' has no task {task!r}; choose one of {list(spec.tasks)}",
        param="task",
    )


def check_dimensions(
    spec: ModelSpec, dimensions: object, param: str = "dimensions", *, lenient: bool = False
) -> int:
    """The width to answer with: any Matryoshka width from 1 to the native one (the vector is
    cut and re-normalized), else the native one; the registry's widths are only advertised.
    `lenient` (Ollama's rule): an integer outside 1..native means the native width."""
    advertised = spec.output_widths
    if not advertised:
        raise InvalidRequest(f"model '{spec.name}' gives no single vectors", param="model")
    native = advertised[0]
    if dimensions is None:
        return native
    if lenient and type(dimensions) is int and not 0 < dimensions < native:
        return native
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= native
    ):
        raise InvalidRequest(
            f"{param} must be an integer from 1 to {native} for model '{spec.name}', "
            f"not {dimensions!r} (advertised widths: {advertised})",
            param=param,
        )
    return dimensions


def check_inputs(
    inputs: Sequence[TextInput | ImageInput],
    settings: Settings,
    param: str = "input",
    *,
    listed: bool = True,
) -> None:
    """Counts and emptiness; an error names the item as the client sent it (input[3])."""
    limit = settings.max_inputs
    if len(inputs) > limit:
        raise InvalidRequest(
            f"too many inputs: {len(inputs)} (at most {limit} per request)", param=param
        )
    images = sum(isinstance(x, ImageInput) for x in inputs)
    if images > settings.max_images:
        raise InvalidRequest(
            f"too many images: {images} (at most {settings.max_images} per request)",
            param=param,
        )
    longest = settings.max_input_chars
    # An empty or blank text is embedded, as Ollama and TEI embed it (its vector is the special
    # tokens'); LangChain's OpenAIEmbeddings sends "" for a text that has no tokens. An image
    # reference that is blank names no image.
    for index, item in enumerate(inputs):
        # The item's name is written only for an error: most requests have none.
        if isinstance(item, ImageInput) and not item.reference.strip():
            raise EmptyInput(f"{_item(param, index, listed)} is empty", param=param)
        if isinstance(item, TextInput) and len(item.text) > longest:
            raise InvalidRequest(
                f"{_item(param, index, listed)} has {len(item.text)} characters, more than "
                f"the {longest} allowed",
                param=param,
            )


def _item(param: str, index: int, listed: bool) -> str:
    return f"{param}[{index}]" if listed else param


def context_limit(spec: ModelSpec, truncate: bool, num_ctx: int | None) -> int | None:
    """The tokens an input may use. Truncating: cut at min(num_ctx, max_tokens). Not truncating:
    accepted up to min(num_ctx, max_positions), refused beyond, as Ollama accepts a model's full
    context (its all-minilm takes 512 positions) while cutting at the trained length. None: the
    model's own cut."""
    ceiling = spec.context_length if truncate else spec.position_limit
    if ceiling is None:
        return None
    return ceiling if num_ctx is None else min(num_ctx, ceiling)


def too_long(
    where: str, limit: int, count: int | None = None, param: str = "input"
) -> InputTooLong:
    """`where` names the input as the client sent it (input[3])."""
    length = f"has {count} tokens, more than" if count is not None else "is longer than"
    return InputTooLong(
        f"{where} {length} the context length of {limit} tokens "
        "(the input length exceeds the context length); send truncate: true to cut it",
        param=param,
    )


def check_finite(*arrays: np.ndarray) -> None:
    """Every number a model produced for a request, before it is answered: JSON has no NaN or
    infinity (orjson would write null where clients expect a float), so any is an error."""
    if not all(np.isfinite(array).all() for array in arrays):
        raise InvalidRequest("the model produced NaN or infinite values for this input")
