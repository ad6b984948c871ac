"""Tiny ONNX graphs that are finite for every token but one: a model fault on demand.

Each graph computes, per token, r = (1 / (id - K) + token_type) * attention_mask, where K is the
id of `WORD` in the tokenizer: r is infinite at that token and small elsewhere. A text model
returns r times a fixed [dim] weight as hidden states, a late-interaction model the same as its
token vectors, a cross-encoder the sum of r over the pair as its logit. So any text with `WORD`
in it makes the model produce inf (and NaN once normalized), and any text without it is fine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

WORD = "apple"  # one token in the BERT uncased vocabulary
DIM = 8
TEXT, LATE, CROSS = "nan-text", "nan-late", "nan-cross"


def _graph(path: Path, token: int, output: str, *, logit: bool) -> None:
    axes = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, axes)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    shape: list[str | int] = ["batch", 1] if logit else [*axes, DIM]
    result = helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)
    signs = np.where(np.arange(DIM) % 2, -1.0, 1.0)
    weight = (np.linspace(0.5, 1.5, DIM) * signs).astype(np.float32)
    constants = [
        numpy_helper.from_array(np.array(float(token), np.float32), "token"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array([1], np.int64), "tokens_axis"),
        numpy_helper.from_array(np.array([2], np.int64), "width_axis"),
        numpy_helper.from_array(weight, "weight"),
    ]
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["ids", "token"], ["distance"]),
        helper.make_node("Div", ["one", "distance"], ["inverse"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["token_type_ids"], ["types"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["inverse", "types"], ["typed"]),
        helper.make_node("Mul", ["typed", "mask"], ["rows"]),
    ]
    if logit:
        nodes.append(helper.make_node("ReduceSum", ["rows", "tokens_axis"], [output]))
    else:
        nodes += [
            helper.make_node("Unsqueeze", ["rows", "width_axis"], ["column"]),
            helper.make_node("Mul", ["column", "weight"], [output]),
        ]
    graph = helper.make_graph(nodes, "non_finite", inputs, [result], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def non_finite_models(folder: Path, tokenizer: Path) -> dict[str, dict[str, object]]:
    """Build the three graphs under `folder` with `tokenizer` (a BERT uncased tokenizer.json);
    returns their registry entries by served name (TEXT, LATE, CROSS)."""
    token = Tokenizer.from_file(str(tokenizer)).token_to_id(WORD)
    assert token is not None, f"{WORD!r} is not one token of {tokenizer}"
    files = {"model": "model.onnx", "tokenizer": "tokenizer.json"}
    kinds = {
        TEXT: ("last_hidden_state", {"kind": "text", "dim": DIM, "pooling": "mean"}),
        LATE: ("output", {"kind": "late", "dim": DIM}),
        CROSS: ("logits", {"kind": "cross-encoder", "max_tokens": 512}),
    }
    entries: dict[str, dict[str, object]] = {}
    for name, (output, entry) in kinds.items():
        place = folder / name
        place.mkdir(parents=True, exist_ok=True)
        _graph(place / "model.onnx", token, output, logit=name == CROSS)
        shutil.copy(tokenizer, place / "tokenizer.json")
        entries[name] = {**entry, "source": str(place), "files": files}
    return entries
