"""What TEI's routes share in reading a request: its `inputs`, `prompt_name` and
`truncation_direction`, refused as TEI refuses them."""

from __future__ import annotations

from gateway.api.openai import TASK_SYNONYMS
from gateway.errors import EmptyInput, InvalidRequest

Inputs = str | list[str]


def texts_of(inputs: Inputs) -> list[str]:
    return [inputs] if isinstance(inputs, str) else list(inputs)


def batch_of(inputs: Inputs) -> list[str]:
    """The texts of a batch; as TEI, an empty batch is refused ("Empty"), not answered with []."""
    if inputs == []:
        raise EmptyInput("inputs cannot be empty", param="inputs")
    return texts_of(inputs)


def embedded_texts(inputs: Inputs) -> list[str]:
    """The texts of a batch to embed (/embed, /embed_all, /embed_sparse). As TEI, an empty
    string is refused ("Empty"), as is an empty batch; a blank string is text, and embedded."""
    texts = batch_of(inputs)
    if "" in texts:
        where = f"inputs[{texts.index('')}]" if isinstance(inputs, list) else "inputs"
        raise EmptyInput(f"{where} is empty", param="inputs")
    return texts


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
