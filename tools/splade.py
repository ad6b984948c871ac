"""A tiny random SPLADE model (BertForMaskedLM), its registry entry and two references.

A 2-layer, 64-wide BertForMaskedLM on bert-base-uncased WordPiece (the tokenizer.json of
all-MiniLM, which the caller passes in), saved under torch/ and exported to ONNX (input_ids,
attention_mask, token_type_ids -> logits [batch, sequence, 30522]). Cached under
.cache/test-models/splade-bert-tiny-<version>/, where the version hashes CONFIG, the tokenizer
and a revision: bump the revision in `splade_version` when the builder changes.

The references run the torch weights: sentence-transformers' SparseEncoder (a fill-mask
Transformer + SpladePooling, the definition the gateway follows) and SPLADE's formula written
out in torch (max over the sequence of log(1 + relu(logits)) times the attention mask, as the
SPLADE papers, TEI and fastembed compute it).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tools.exports import TINY_BERT, TOKEN_INPUTS, cached_export, export_by_keyword

NAME = "splade-bert-tiny"
MAX_TOKENS = 64
CONFIG = TINY_BERT
# Subtracted from the MLM head's bias: a trained SPLADE activates a few hundred of 30522 ids;
# random weights with a zero bias would activate about half of them.
BIAS_OFFSET = 4.5
TEXTS = [
    "what is sparse retrieval?",
    "SPLADE expands a text into weighted vocabulary terms, so 'car' can match 'vehicle'.",
    "short",
    " ",  # blank: [CLS] [SEP] only, still a vector
    "Zürich café: naïve résumé",
    # Longer than MAX_TOKENS: cut to MAX_TOKENS when truncating, refused when not.
    "lexical " * 80,
    "punctuation!!! in a text??? (yes; really).",
]
LONG = 5

Pooling = Literal["max", "sum"]


def splade_version(tokenizer: Path, config: dict[str, Any] = CONFIG) -> str:
    digest = hashlib.sha256(json.dumps({**config, "bias": BIAS_OFFSET}, sort_keys=True).encode())
    digest.update(tokenizer.read_bytes())
    digest.update(b"r1")  # bump when build_splade changes
    return digest.hexdigest()[:12]


def build_splade(folder: Path, tokenizer_json: Path, config: dict[str, Any] = CONFIG) -> None:
    """Save the seeded model and its tokenizer under folder/torch, export folder/model.onnx."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    raw = json.loads(tokenizer_json.read_text())
    raw["padding"] = raw["truncation"] = None  # the published file bakes in 128 of each
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    tokenizer = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size, **config)).eval()
    with torch.no_grad():
        model.cls.predictions.bias -= BIAS_OFFSET
    model.save_pretrained(folder / "torch")
    tokenizer.save_pretrained(folder / "torch")
    # A padded batch: zeros in the mask, or the exporter could fold the masking path away.
    sample = tokenizer(["short", TEXTS[1]], padding=True, return_tensors="pt")
    example = tuple(sample[name] for name in TOKEN_INPUTS)
    export_by_keyword(model, example, folder / "model.onnx", "logits", {0: "batch", 1: "sequence"})


def splade_dir(bert_tokenizer: Path, config: dict[str, Any] = CONFIG, name: str = NAME) -> Path:
    """The model's folder (built the first time it is asked for); `bert_tokenizer` is
    bert-base-uncased's tokenizer.json."""
    build = functools.partial(build_splade, tokenizer_json=bert_tokenizer, config=config)
    return cached_export(name, splade_version(bert_tokenizer, config), build)


def splade_entry(folder: Path, max_tokens: int = MAX_TOKENS, **overrides: object) -> dict[str, Any]:
    return {
        "kind": "sparse",
        "source": str(folder),
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "max_tokens": max_tokens,
        "vocab_size": 30522,
        **overrides,
    }


def sentence_transformers_weights(
    folder: Path, texts: list[str], max_tokens: int, pooling: Pooling = "max"
) -> np.ndarray:
    """[texts, vocab] float32 weights from sentence-transformers' SparseEncoder on torch/."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    transformer = Transformer(
        str(folder / "torch"), transformer_task="fill-mask", max_seq_length=max_tokens
    )
    encoder = SparseEncoder(
        modules=[transformer, SpladePooling(pooling_strategy=pooling)], device="cpu"
    )
    weights = encoder.encode(texts, batch_size=len(texts), convert_to_sparse_tensor=False)
    return np.asarray(weights.cpu().numpy(), dtype=np.float32)


def torch_weights(folder: Path, texts: list[str], max_tokens: int) -> np.ndarray:
    """[texts, vocab] float32: SPLADE's max pooling written out on transformers' outputs."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder / "torch")
    model = AutoModelForMaskedLM.from_pretrained(folder / "torch").eval()
    features = tokenizer(
        texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**features).logits
        weights = torch.log1p(torch.relu(logits)) * features["attention_mask"].unsqueeze(-1)
        return weights.max(dim=1).values.numpy().astype(np.float32)
