"""Validation of a request against its model and the process's limits (400s that say why)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.errors import InputTooLong, InvalidRequest
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


def check_dimensions(spec: ModelSpec, dimensions: int | None) -> int:
    """The width to answer with: the request's, if the model offers it, else the native one."""
    allowed = spec.output_widths
    if not allowed:
        raise InvalidRequest(f"model '{spec.name}' gives no single vectors", param="model")
    if dimensions is None:
        return allowed[0]
    if dimensions not in allowed:
        raise InvalidRequest(
            f"dimensions {dimensions} is not supported by model '{spec.name}'; "
            f"choose one of {allowed}",
            param="dimensions",
        )
    return dimensions


def check_inputs(
    inputs: Sequence[TextInput | ImageInput], settings: Settings, param: str = "input"
) -> None:
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
    for index, item in enumerate(inputs):
        value = item.text if isinstance(item, TextInput) else item.reference
        where = f"{param}[{index}]" if len(inputs) > 1 or param != "query" else param
        if not value or not value.strip():
            raise InvalidRequest(f"{where} is empty", param=param)
        if isinstance(item, TextInput) and len(value) > longest:
            raise InvalidRequest(
                f"{where} has {len(value)} characters, more than the {longest} allowed",
                param=param,
            )


def too_long(index: int, limit: int) -> InputTooLong:
    return InputTooLong(
        f"input[{index}] is longer than the context length of {limit} tokens "
        "(the input length exceeds the context length); send truncate: true to cut it",
        param="input",
    )


def check_finite(vectors: np.ndarray) -> None:
    if not np.isfinite(vectors).all():
        raise InvalidRequest("the model produced NaN or infinite values for this input")
