"""Image towers and ColBERT graphs exported with their batch axis a static 1 (`pixel_values`
[1, 3, H, W], `input_ids` [1, seq]): found at load and run an item at a time, with what each
item gets alone and what the same export with an open batch axis gives.

The exports are the tiny random-weight ones the fast-path checks use (tools/fast_path.py);
the static axis is written into a copy of the graph with the onnx package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from gateway.encoders import build_encoder
from gateway.runtime import Runtime
from tools.colbert_models import bert_colbert
from tools.fast_path import Case, colbert_case, mixed_texts, vision_case
from tools.models import pull_default_model
from tools.vision import clip_vision_tiny

# A static axis may pick other kernels than an open one (ONNX Runtime, vision tower: 4.8e-7).
MAX_DIFF = 1e-5


def fix_batch_axis(graph: Path, out: Path) -> Path:
    """A copy of `graph` whose inputs all declare a batch of 1."""
    model = onnx.load(str(graph))
    for tensor in model.graph.input:
        tensor.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save_model(model, str(out))
    return out


def case_of(kind: str) -> Case:
    if kind == "vision":
        return vision_case(clip_vision_tiny(), count=5)
    tokenizer = pull_default_model() / "tokenizer.json"
    return colbert_case(bert_colbert(tokenizer), mixed_texts(12))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("kind", ["vision", "colbert"])
def test_a_graph_fixed_to_one_row_serves_a_batch_as_each_item_alone(
    kind: str, backend: str, tmp_path: Path
) -> None:
    case = case_of(kind)
    fixed_paths = {**case.paths, "model": fix_batch_axis(case.paths["model"], tmp_path / "m.onnx")}
    runtime = Runtime(device="cpu", backend=backend, precision="fp32")
    open_axis = build_encoder(case.spec, case.paths, runtime)
    fixed = build_encoder(case.spec, fixed_paths, runtime)
    assert fixed.one_row_inputs and not open_axis.one_row_inputs
    items = case.items(fixed)
    together = [np.asarray(out) for out in fixed.run(items)]
    alone = [np.asarray(fixed.run([item])[0]) for item in items]
    reference = [np.asarray(open_axis.run([item])[0]) for item in case.items(open_axis)]
    assert [a.shape for a in together] == [a.shape for a in alone] == [a.shape for a in reference]
    worst_alone = max(float(np.abs(a - b).max()) for a, b in zip(together, alone, strict=True))
    worst_open = max(float(np.abs(a - b).max()) for a, b in zip(together, reference, strict=True))
    print(f"\n{kind} on {backend}: batch vs alone {worst_alone:.1e}, vs open axis {worst_open:.1e}")
    assert worst_alone == 0.0 and worst_open <= MAX_DIFF
