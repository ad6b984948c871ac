"""A tiny random Qwen3 embedder laid out as onnx-community/Qwen3-Embedding-0.6B-ONNX is, and
sentence-transformers on the same weights as the reference.

The folder (cached under .cache/test-models/qwen3-tiny-<version>/) holds what the hub
repository holds at the paths registry.yaml's `qwen3-embedding` entry names:
- `onnx/model.onnx` with its weights in `onnx/model.onnx_data` (external data), inputs
  `input_ids`, `attention_mask`, `position_ids` and an empty-able KV cache
  `past_key_values.<layer>.key|value` [batch, kv_heads, past, head_dim], outputs
  `last_hidden_state` and `present.<layer>.key|value`: a transformers.js-style export;
- `tokenizer.json`: a byte-level BPE trained here on the test corpus (no Qwen tokenizer ships
  offline), with `<|endoftext|>` appended by a TemplateProcessing as Qwen's current
  tokenizer.json does; `config.json`.
`torch/` holds the same weights and tokenizer for the references: sentence-transformers
(Transformer, Pooling lasttoken, Normalize, the model card's query prompt; padded on the left,
as Qwen's tokenizer_config.json asks) and the model card's transformers recipe
(`last_token_pool`, right padding).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tools.corpus import SENTENCES, SHORT, UNICODE
from tools.exports import cached_export
from tools.paths import REPO

NAME = "qwen3-tiny"
VERSION = "l2-h64-kv2-bpe600-r1"
# The same export with the cache inputs' batch axis fixed to 1, as some exports declare it.
ONE_ROW_NAME = "qwen3-tiny-cache-batch1"
ONE_ROW_VERSION = f"{VERSION}-c1"
ENTRY = "qwen3-embedding"
END = "<|endoftext|>"
SPECIALS = [END, "<|im_start|>", "<|im_end|>"]
CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 512,
    # Wide weights: at the usual 0.02 every text comes out nearly the same vector.
    "initializer_range": 0.2,
}
MAX_TOKENS = 256  # the test entry's cut (the tiny model is traced for 512 positions)


def shipped_entry() -> dict[str, Any]:
    entry: dict[str, Any] = yaml.safe_load((REPO / "registry.yaml").read_text())["models"][ENTRY]
    return entry


def query_prompt() -> str:
    prompt: str = shipped_entry()["prefixes"]["query"]
    return prompt


def train_tokenizer() -> Any:
    """A byte-level BPE (Qwen's kind of tokenizer) with Qwen's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*SENTENCES, *SHORT, *UNICODE, query_prompt()] * 4
    tokenizer.train_from_iterator(corpus, trainer)
    end_id = tokenizer.token_to_id(END)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {END}:0", pair=f"$A:0 {END}:0 $B:1 {END}:1", special_tokens=[(END, end_id)]
    )
    return tokenizer


class Prefill:
    """Builds the torch module that is traced: Qwen3Model over a given (empty) KV cache,
    returning the last hidden state and the cache after this pass, as optimum's
    feature-extraction-with-past export does."""

    @staticmethod
    def module(model: Any) -> Any:
        import torch
        from transformers import DynamicCache

        layers = model.config.num_hidden_layers

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, input_ids, attention_mask, position_ids, *past):  # type: ignore[no-untyped-def]
                pairs = [(past[2 * i], past[2 * i + 1]) for i in range(layers)]
                cache = DynamicCache(ddp_cache_data=pairs, config=model.config)
                out = self.inner(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    past_key_values=cache,
                    use_cache=True,
                )
                present = []
                for layer in out.past_key_values.layers:
                    present += [layer.keys, layer.values]
                return (out.last_hidden_state, *present)

        return Wrapped().eval()


def past_names(layers: int, prefix: str = "past_key_values") -> list[str]:
    return [f"{prefix}.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def export(model: Any, tokenizer: Any, onnx_dir: Path) -> None:
    """model.onnx + model.onnx_data, traced on a right-padded batch with an empty cache."""
    import onnx
    import torch

    config = model.config
    layers = config.num_hidden_layers
    encodings = tokenizer.encode_batch(["short", SENTENCES[3]])
    longest = max(len(e.ids) for e in encodings)
    ids = torch.zeros((2, longest), dtype=torch.int64)
    mask = torch.zeros_like(ids)  # zeros in it, or the exporter could fold the masking away
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = torch.tensor(encoding.ids)
        mask[row, : len(encoding.ids)] = 1
    positions = torch.clamp(mask.cumsum(1) - 1, min=0)
    empty = torch.zeros((2, config.num_key_value_heads, 0, config.head_dim))
    past = [empty] * (2 * layers)
    inputs = ["input_ids", "attention_mask", "position_ids", *past_names(layers)]
    outputs = ["last_hidden_state", *past_names(layers, "present")]
    axes: dict[str, dict[int, str]] = {
        name: {0: "batch_size", 1: "sequence_length"} for name in inputs[:3]
    }
    axes["attention_mask"] = {0: "batch_size", 1: "total_sequence_length"}
    axes["last_hidden_state"] = {0: "batch_size", 1: "sequence_length"}
    for name in inputs[3:]:
        axes[name] = {0: "batch_size", 2: "past_sequence_length"}
    for name in outputs[1:]:
        axes[name] = {0: "batch_size", 2: "total_sequence_length"}
    single = onnx_dir / "single.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer warns about every traced branch
        torch.onnx.export(
            Prefill.module(model),
            (ids, mask, positions, *past),
            str(single),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    graph = onnx.load(str(single))
    single.unlink()
    # Weights beside the graph, as the 2.4 GB fp32 export must keep them (protobuf's 2 GiB).
    onnx.save_model(
        graph,
        str(onnx_dir / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx_data",
        size_threshold=0,
    )


def build(folder: Path) -> None:
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    tokenizer = train_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=tokenizer.get_vocab_size(),
        attn_implementation="eager",
        eos_token_id=tokenizer.token_to_id(END),
        pad_token_id=tokenizer.token_to_id(END),
        **CONFIG,
    )
    model = Qwen3Model(config).eval()
    torch_dir = folder / "torch"
    model.save_pretrained(str(torch_dir))
    (folder / "config.json").write_text((torch_dir / "config.json").read_text())
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=END, pad_token=END, padding_side="left"
    )
    fast.save_pretrained(str(torch_dir))
    (folder / "onnx").mkdir()
    export(model, tokenizer, folder / "onnx")


def qwen3_dir() -> Path:
    return cached_export(NAME, VERSION, build)


def declare_cache_axis(graph_path: Path, axis: int, size: int | str) -> None:
    """Declare `axis` of every `past_key_values.*` input of the graph at `graph_path` a static
    `size` (an int) or a named, open one (a str), in place; its external weights stay as they
    are."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False)
    for tensor in graph.graph.input:
        if tensor.name.startswith("past_key_values."):
            dim = tensor.type.tensor_type.shape.dim[axis]
            if isinstance(size, int):
                dim.dim_value = size  # clears dim_param (one of the two)
            else:
                dim.dim_param = size
    onnx.save_model(graph, str(graph_path))


def copy_export(folder: Path) -> Path:
    """What qwen3_dir() serves (not torch/) copied into `folder`; the graph's path there."""
    source = qwen3_dir()
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_file() and relative.parts[0] != "torch" and path.name != ".complete":
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / relative)
    return folder / "onnx" / "model.onnx"


def build_one_row(folder: Path) -> None:
    """The export of qwen3_dir(), its cache inputs fixed to a batch of 1."""
    declare_cache_axis(copy_export(folder), 0, 1)


def qwen3_one_row_dir() -> Path:
    """The tiny Qwen3 whose KV-cache inputs take one row only (a static batch of 1)."""
    return cached_export(ONE_ROW_NAME, ONE_ROW_VERSION, build_one_row)


def qwen3_entry(folder: Path, **overrides: object) -> dict[str, Any]:
    """registry.yaml's qwen3-embedding entry serving `folder` (the same file paths, a local
    source), cut at the tiny model's MAX_TOKENS."""
    shipped = shipped_entry()
    entry = {
        **shipped,
        "description": "tiny random-weight Qwen3 following Qwen3-Embedding's recipe",
        "source": str(folder),
        "files": {role: _path(ref) for role, ref in shipped["files"].items()},
        "dim": CONFIG["hidden_size"],
        "dimensions": [64, 32, 16],
        "max_tokens": MAX_TOKENS,
        "max_positions": MAX_TOKENS,
        "memory_estimate": "64MiB",
    }
    entry.update(overrides)
    return entry


def _path(ref: str | dict[str, str]) -> str:
    return ref if isinstance(ref, str) else ref["path"]


def sentence_transformer(folder: Path) -> Any:
    """sentence-transformers' Qwen3-Embedding pipeline on the torch weights: Transformer,
    last-token Pooling, Normalize, with the entry's query prompt."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(folder / "torch"), max_seq_length=MAX_TOKENS)
    pooling = Pooling(CONFIG["hidden_size"], pooling_mode="lasttoken")
    return SentenceTransformer(
        modules=[transformer, pooling, Normalize()],
        device="cpu",
        prompts={"query": query_prompt(), "document": ""},
    )


def st_embed(model: Any, texts: list[str], prompt_name: str, widths: list[int]) -> dict[int, Any]:
    """width -> [texts, width] float32: the full vectors sliced, then L2-normalized again (the
    Matryoshka recipe of the model card: truncate, then normalize)."""
    full = model.encode(texts, prompt_name=prompt_name, batch_size=len(texts))
    full = np.asarray(full, dtype=np.float32)
    out = {}
    for width in widths:
        cut = full[:, :width]
        out[width] = cut / np.linalg.norm(cut, axis=1, keepdims=True)
    return out


def card_recipe(folder: Path, texts: list[str]) -> Any:
    """[texts, hidden] float32 by the model card's transformers code (last_token_pool, then
    F.normalize), right-padded here: the other branch of its last_token_pool."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder / "torch", padding_side="right")
    model = AutoModel.from_pretrained(folder / "torch").eval()
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    lengths = batch["attention_mask"].sum(dim=1) - 1
    pooled = hidden[torch.arange(hidden.shape[0]), lengths]
    return F.normalize(pooled, p=2, dim=1).numpy().astype(np.float32)


def config_of(folder: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((folder / "config.json").read_text())
    return config
