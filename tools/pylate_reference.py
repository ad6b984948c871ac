"""Build a tiny random PyLate ColBERT, export it to ONNX, and write PyLate's own outputs.

Runs with the PyLate venv's python (tools/pylate_env.py), never inside the gateway's
venv, and imports nothing from this repository: the reference must be independent of the code
it checks. Usage: `python pylate_reference.py JOB.json` where the job names the output folder,
the architecture, the ColBERT settings and the texts; see tools/colbert_models.py.

Writes into the job's out_dir:
  pylate/              the saved PyLate model (tokenizer.json with PyLate's own mutations)
  graph/model.onnx     layout (a): transformer -> Dense -> L2 inside the graph, output "output"
  hidden/model.onnx    layout (b): hidden states only, output "last_hidden_state"
  projection.npy       the Dense weight [dim, hidden] for layout (b) (also pylate/1_Dense/)
  reference.npz        q{i} / d{i}: PyLate encode(is_query=...) token vectors; scores: MaxSim;
                       q_attend{i} / q_noexp{i}: queries with attend_to_expansion_tokens=True
                       and with do_query_expansion=False
  reference.json       prefix / mask / skiplist ids, PyLate's token ids per text, versions
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch


def build_bert_base(job: dict, base: Path) -> None:
    """A random BertModel with the bert-base-uncased WordPiece vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    # The published tokenizer.json bakes in Fixed(128) padding and truncation at 128: strip them.
    raw = json.loads(Path(job["tokenizer"]).read_text())
    raw["padding"] = None
    raw["truncation"] = None
    clean = base / "source-tokenizer.json"
    base.mkdir(parents=True, exist_ok=True)
    clean.write_text(json.dumps(raw))
    # BertTokenizerFast (not PreTrainedTokenizerFast) keeps token_type_ids in transformers 5.x.
    tokenizer = BertTokenizerFast(tokenizer_file=str(clean))
    config = BertConfig(vocab_size=tokenizer.vocab_size, **job["config"])
    BertModel(config).eval().save_pretrained(base)
    tokenizer.save_pretrained(base)
    clean.unlink()


def build_modernbert_base(job: dict, base: Path) -> None:
    """A random ModernBertModel with a small byte-level BPE trained here (no hub offline)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    # ModernBERT's tokenizer (OLMo/GPT-NeoX style): byte-level, no prefix space.
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=job["bpe_vocab_size"],
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(job["bpe_corpus"], trainer=trainer)
    cls, sep = bpe.token_to_id("[CLS]"), bpe.token_to_id("[SEP]")
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        # As ModernBERT's tokenizer_config: the model takes no token_type_ids.
        model_input_names=["input_ids", "attention_mask"],
    )
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=cls,
        sep_token_id=sep,
        bos_token_id=cls,
        eos_token_id=sep,
        **job["config"],
    )
    base.mkdir(parents=True, exist_ok=True)
    ModernBertModel(config).eval().save_pretrained(base)
    tokenizer.save_pretrained(base)


# reference.npz key prefix -> ColBERT(...) overrides for query vectors
QUERY_VARIANTS = {
    "q_attend": {"attend_to_expansion_tokens": True},
    "q_noexp": {"do_query_expansion": False},
}


class GraphLayout(torch.nn.Module):
    """Layout (a), as lightonai/next-plaid's exporter: transformer -> every Dense -> L2."""

    def __init__(self, colbert, with_types: bool) -> None:
        super().__init__()
        self.transformer = colbert[0].auto_model
        self.denses = torch.nn.ModuleList(list(colbert)[1:])
        self.with_types = with_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {"token_type_ids": token_type_ids} if self.with_types else {}
        hidden = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, **extra
        ).last_hidden_state
        for dense in self.denses:
            hidden = dense.activation_function(dense.linear(hidden))
        return torch.nn.functional.normalize(hidden, p=2, dim=-1)


class HiddenLayout(torch.nn.Module):
    """Layout (b): the transformer alone; the projection is applied outside the graph."""

    def __init__(self, colbert, with_types: bool) -> None:
        super().__init__()
        self.transformer = colbert[0].auto_model
        self.with_types = with_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {"token_type_ids": token_type_ids} if self.with_types else {}
        return self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, **extra
        ).last_hidden_state


def export(module: torch.nn.Module, path: Path, output: str, with_types: bool, sample) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    args = tuple(sample[name] for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch", 1: "sequence"}
    # The legacy (TorchScript) exporter: 0.3 s against ~8 s for dynamo, same numbers;
    # parity with PyLate is what the tests check anyway.
    torch.onnx.export(
        module.eval(),
        args,
        str(path),
        input_names=names,
        output_names=[output],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
        external_data=False,
    )


def main(job_path: str) -> None:
    started = time.monotonic()
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(job.get("seed", 0))
    torch.set_num_threads(1)

    from pylate import models, scores

    base = out / "base"
    if job["arch"] == "bert":
        build_bert_base(job, base)
    elif job["arch"] == "modernbert":
        build_modernbert_base(job, base)
    else:
        raise SystemExit(f"unknown arch {job['arch']!r}")

    settings = job["colbert"]
    built = models.ColBERT(
        model_name_or_path=str(base),
        device="cpu",
        embedding_size=settings["dim"],
        query_prefix=settings["query_prefix"],
        document_prefix=settings["document_prefix"],
        query_length=settings["query_length"],
        document_length=settings["document_length"],
        attend_to_expansion_tokens=settings["attend_to_expansion_tokens"],
        skiplist_words=settings["skiplist"],
    )
    built.save(str(out / "pylate"))
    # Reference outputs come from the reloaded model: exactly what was saved is what is served.
    model = models.ColBERT(model_name_or_path=str(out / "pylate"), device="cpu")
    model.eval()

    queries, documents = job["queries"], job["documents"]
    q_vecs = model.encode(queries, is_query=True, convert_to_numpy=True, batch_size=8)
    d_vecs = model.encode(documents, is_query=False, convert_to_numpy=True, batch_size=8)
    pair_scores = [
        float(
            scores.colbert_scores(
                torch.from_numpy(q_vecs[qi])[None], torch.from_numpy(d_vecs[di])[None]
            )[0, 0]
        )
        for qi, di in job["pairs"]
    ]
    arrays = {f"q{i}": v for i, v in enumerate(q_vecs)}
    arrays |= {f"d{i}": v for i, v in enumerate(d_vecs)}
    # The two other query settings a registry entry may choose, on the same saved weights.
    for key, overrides in QUERY_VARIANTS.items():
        variant = models.ColBERT(model_name_or_path=str(out / "pylate"), device="cpu", **overrides)
        vectors = variant.encode(queries, is_query=True, convert_to_numpy=True, batch_size=8)
        arrays |= {f"{key}{i}": v for i, v in enumerate(vectors)}
    arrays["scores"] = np.asarray(pair_scores, dtype=np.float64)

    def token_rows(texts: list[str], is_query: bool) -> list[dict]:
        rows = []
        for text in texts:
            features = model.tokenize([text], is_query=is_query)
            rows.append(
                {
                    "input_ids": features["input_ids"][0].tolist(),
                    "attention_mask": features["attention_mask"][0].tolist(),
                }
            )
        return rows

    with_types = "token_type_ids" in model.tokenize(["x"], is_query=False)
    sample = dict(model.tokenize(documents[:2], is_query=False))
    export(GraphLayout(model, with_types), out / "graph" / "model.onnx", "output", with_types,
           sample)  # fmt: skip
    export(HiddenLayout(model, with_types), out / "hidden" / "model.onnx", "last_hidden_state",
           with_types, sample)  # fmt: skip
    denses = list(model)[1:]
    if len(denses) != 1 or denses[0].linear.bias is not None:
        raise SystemExit("expected exactly one bias-free Dense layer")
    np.save(out / "projection.npy", denses[0].linear.weight.detach().numpy())

    import pylate
    import sentence_transformers
    import transformers

    facts = {
        "query_prefix_id": model.query_prefix_id,
        "document_prefix_id": model.document_prefix_id,
        "mask_token_id": model.tokenizer.mask_token_id,
        "pad_token_id": model.tokenizer.pad_token_id,
        "skiplist_ids": list(model.skiplist),
        "query_length": model.query_length,
        "document_length": model.document_length,
        "do_query_expansion": model.do_query_expansion,
        "attend_to_expansion_tokens": model.attend_to_expansion_tokens,
        "dim": int(q_vecs[0].shape[1]),
        "has_token_type_ids": with_types,
        "queries": token_rows(queries, True),
        "documents": token_rows(documents, False),
        "versions": {
            "pylate": pylate.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    np.savez(out / "reference.npz", **arrays)
    (out / "reference.json").write_text(json.dumps(facts, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
