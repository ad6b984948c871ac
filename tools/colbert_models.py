"""Tiny random ColBERT models built by PyLate, their ONNX exports and PyLate's reference outputs.

Each model is built once per machine by tools/pylate_reference.py (in the PyLate venv)
and cached under .cache/test-models/<name>-<version>/, where the version hashes the job and
the reference script: editing either rebuilds, re-runs reuse.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.paths import REPO
from tools.pylate_env import ensure_pylate_python

CACHE = REPO / ".cache" / "test-models"
SCRIPT = Path(__file__).with_name("pylate_reference.py")

QUERIES = [
    "what is colbert?",
    "How does late interaction compare with a single-vector embedding for retrieval?",
    # Longer than query_length: PyLate cuts it to query_length - 1 before the marker.
    "Explain "
    + "the history of information retrieval, from boolean models to BM25 and beyond, " * 3
    + "and finally neural rankers",
    "   padded    with   spaces   ",
    "punctuation!!! in a query??? (yes; really).",
    "Zürich café: naïve résumé",
]
DOCUMENTS = [
    "short",
    "Hello, world! This is a test.",
    "ColBERT encodes every token; punctuation is skipped... in documents, not in queries.",
    # Punctuation-heavy: most tokens are on the skiplist.
    "!!! ??? ... ,,, ;;; ::: --- (( )) [[ ]] {{ }} @@ ## $$ %% ^^ && ** __ ++ == || \\\\ // "
    "<< >> ~~ `` '' \"\" -- a-b, c.d; e:f",
    "?!",
    # Longer than document_length, with punctuation all the way through.
    " ".join(f"word{i % 50}, token {i}." for i in range(150)),
    "Late interaction keeps one vector per token and scores with MaxSim over query tokens.",
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France; it lies on the Seine.",
    "retrieval " * 400,
]
# 20 query-document pairs that visit every query and every document.
PAIRS = [(q % len(QUERIES), (3 * q + 1) % len(DOCUMENTS)) for q in range(20)]


@dataclass(frozen=True)
class ColbertSettings:
    """The ColBERT settings a model is built with, in LateModelSpec's vocabulary."""

    dim: int
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    attend_to_expansion_tokens: bool = False
    skiplist: tuple[str, ...] = tuple(string.punctuation)


# answerai-colbert-small-v1's settings on a 2-layer, 64-wide random BERT.
BERT = ColbertSettings(
    dim=96, query_prefix="[unused0]", document_prefix="[unused1]", query_length=32,
    document_length=300,
)  # fmt: skip
# Weights 10x wider than the usual 0.02: with tiny weights attention barely moves a token's
# vector, so a mistake in masks or [MASK] attention would hide under a cosine of 0.9999.
INITIALIZER_RANGE = 0.2
BERT_CONFIG = {
    "initializer_range": INITIALIZER_RANGE,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
}
# GTE-ModernColBERT-v1's settings: "[Q] "/"[D] " added tokens, no token types, dim 128.
MODERNBERT = ColbertSettings(
    dim=128, query_prefix="[Q] ", document_prefix="[D] ", query_length=32, document_length=300
)
MODERNBERT_CONFIG = {
    "initializer_range": INITIALIZER_RANGE,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": 512,
    # Layers 1 and 2 attend within a 64-token window, so long documents exercise local attention.
    "local_attention": 64,
}
# Text for the byte-level BPE: the test texts plus filler, so merges resemble real English.
BPE_CORPUS = [
    *QUERIES,
    *DOCUMENTS,
    "the of and to in is that for it as was with be by on not he this are or his from at",
    "retrieval ranking documents queries tokens vectors embeddings models search index",
    "Hello world, this is a sentence. Another one follows; and then: a question?",
] * 20


@dataclass(frozen=True)
class ColbertModel:
    """A built model: where its files are, and PyLate's outputs for QUERIES and DOCUMENTS."""

    name: str
    folder: Path
    settings: ColbertSettings
    facts: dict[str, Any]
    vectors: dict[str, np.ndarray]

    @property
    def tokenizer(self) -> Path:
        return self.folder / "pylate" / "tokenizer.json"

    def query_vectors(self, index: int) -> np.ndarray:
        return self.vectors[f"q{index}"]

    def document_vectors(self, index: int) -> np.ndarray:
        return self.vectors[f"d{index}"]

    @property
    def scores(self) -> np.ndarray:
        return self.vectors["scores"]


def _job(arch: str, settings: ColbertSettings, config: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = {
        "arch": arch,
        "seed": 0,
        "config": config,
        "colbert": {**settings.__dict__, "skiplist": list(settings.skiplist)},
        "queries": QUERIES,
        "documents": DOCUMENTS,
        "pairs": PAIRS,
    }
    if arch == "modernbert":
        job |= {"bpe_corpus": BPE_CORPUS, "bpe_vocab_size": 800}
    return job


def _version(job: dict[str, Any], extra: bytes = b"") -> str:
    digest = hashlib.sha256(json.dumps(job, sort_keys=True).encode())
    digest.update(SCRIPT.read_bytes())
    digest.update(extra)
    return digest.hexdigest()[:12]


def build(name: str, job: dict[str, Any], *, inputs: tuple[Path, ...] = ()) -> ColbertModel:
    """Build (or find in the cache) one model; `inputs` are files whose bytes the job depends on."""
    version = _version(job, b"".join(path.read_bytes() for path in inputs))
    folder = CACHE / f"{name}-{version}"
    done = folder / "reference.json"
    if not done.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with (CACHE / f".{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run waits, then finds it built
            if not done.is_file():
                _run_reference(name, job, folder)
    with np.load(folder / "reference.npz") as data:
        vectors = {key: data[key] for key in data.files}
    settings = BERT if job["arch"] == "bert" else MODERNBERT
    return ColbertModel(name, folder, settings, json.loads(done.read_text()), vectors)


def _run_reference(name: str, job: dict[str, Any], folder: Path) -> None:
    python = ensure_pylate_python()
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    job_path = staging / "job.json"
    job_path.write_text(json.dumps({**job, "out_dir": str(staging)}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [str(python), str(SCRIPT), str(job_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"pylate_reference.py failed for {name}:\n{run.stderr[-6000:]}")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)  # atomic: a half-built folder is never taken for a cached one
    for stale in CACHE.glob(f"{name}-*"):  # earlier versions of this model
        if stale != folder and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def bert_colbert(bert_tokenizer: Path) -> ColbertModel:
    """answerai-colbert-small-v1's shape; `bert_tokenizer` is bert-base-uncased tokenizer.json."""
    job = _job("bert", BERT, BERT_CONFIG) | {"tokenizer": str(bert_tokenizer)}
    return build("colbert-bert-tiny", job, inputs=(bert_tokenizer,))


def modernbert_colbert() -> ColbertModel:
    return build("colbert-modernbert-tiny", _job("modernbert", MODERNBERT, MODERNBERT_CONFIG))
