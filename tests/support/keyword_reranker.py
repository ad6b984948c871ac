"""A cross-encoder that counts a keyword in the document: where in a long document a passage
sits decides its score, so chunking can be seen at work.

The ONNX graph's logit for a pair is the number of `KEYWORD` tokens on the document's side
(token type 1, attention 1): a document scores 1 or more only if the keyword is among the
tokens the model reads, 0 otherwise. It reads the BERT uncased tokenizer of all-minilm.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

KEYWORD = "needle"  # one token in the BERT uncased vocabulary
NAME = "keyword-reranker"


def _graph(path: Path, token: int) -> None:
    axes = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, axes)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])
    constants = [
        numpy_helper.from_array(np.array(token, np.int64), "keyword"),
        numpy_helper.from_array(np.array([1], np.int64), "tokens_axis"),
    ]
    nodes = [
        helper.make_node("Equal", ["input_ids", "keyword"], ["is_keyword"]),
        helper.make_node("Cast", ["is_keyword"], ["hits"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["token_type_ids"], ["document_side"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["read"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["hits", "document_side"], ["document_hits"]),
        helper.make_node("Mul", ["document_hits", "read"], ["counted"]),
        helper.make_node("ReduceSum", ["counted", "tokens_axis"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "keyword_reranker", inputs, [logits], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def keyword_reranker(folder: Path, tokenizer: Path, max_tokens: int) -> dict[str, object]:
    """Build the graph under `folder` with `tokenizer` (a BERT uncased tokenizer.json); its
    registry entry."""
    token = Tokenizer.from_file(str(tokenizer)).token_to_id(KEYWORD)
    assert token is not None, f"{KEYWORD!r} is not one token of {tokenizer}"
    folder.mkdir(parents=True, exist_ok=True)
    _graph(folder / "model.onnx", token)
    shutil.copy(tokenizer, folder / "tokenizer.json")
    return {
        "kind": "cross-encoder",
        "source": str(folder),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "max_tokens": max_tokens,
    }
