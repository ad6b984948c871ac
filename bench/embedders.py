"""In-process embedders: raw ONNX Runtime + HF tokenizers, and sentence-transformers.

`OrtEmbedder` is the runtime's own ceiling: no server, no queue, just tokenize -> pad -> run ->
mean-pool -> L2. Its session options are the gateway's own (`gateway.runtime.Runtime`: intra-op
threads = physical cores, one inter-op thread, sequential, all graph optimizations, spinning as
GATEWAY_SPIN's default), so "raw" differs from the gateway only by what the gateway adds around
the session; `session_settings()` records them in the results. The one-at-a-time server uses
the same embedder, one input per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.models import MAX_TOKENS
from gateway.encoders.tokenization import encode_texts
from gateway.runtime import Runtime, physical_cores


def session_settings() -> dict[str, object]:
    import onnxruntime as ort

    return {
        "onnxruntime": ort.__version__,
        "intra_op_threads": physical_cores(),
        "inter_op_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization": "ORT_ENABLE_ALL",
        "allow_spinning": Runtime().spin,
        "mem_pattern": False,
    }


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class OrtEmbedder:
    def __init__(self, onnx: Path, tokenizer_json: Path, *, max_tokens: int = MAX_TOKENS) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        runtime = Runtime()
        self.threads = runtime.threads
        options = runtime.session_options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        self.session = ort.InferenceSession(
            str(onnx), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        # The shipped tokenizer.json pads to 128 and truncates at 128.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        # The gateway's rule: one text on this thread (encode_batch would hop to its pool,
        # which made a raw one-text row ~0.05 ms slower than the runtime itself is).
        return [e.ids for e in encode_texts(self.tokenizer, texts)]

    def run(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        """One session run over already tokenized rows; [len(rows), dim] unit vectors."""
        longest = max(len(r) for r in rows)
        ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.infer(feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
        return _normalize(pooled).astype(np.float32)

    def infer(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The model's last hidden state, [rows, tokens, dim], for one padded batch."""
        (hidden,) = self.session.run(None, feed)
        return np.asarray(hidden)

    def embed_sorted(self, texts: Sequence[str], batch_size: int) -> tuple[np.ndarray, int]:
        """Everything, in ideal batches: sorted by token count, cut every `batch_size`.

        Returns the vectors in input order and the padded token count (for the padding ratio).
        """
        rows = self.tokenize(texts)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out: np.ndarray | None = None
        padded = 0
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            vectors = self.run([rows[i] for i in chunk])
            padded += len(chunk) * max(len(rows[i]) for i in chunk)
            if out is None:
                out = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
            out[chunk] = vectors
        assert out is not None
        return out, padded


class StEmbedder:
    """sentence-transformers on PyTorch, called the way its users call it."""

    def __init__(self, folder: Path, threads: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(folder), device="cpu")
        self.model.max_seq_length = MAX_TOKENS
        self.versions = {"torch": torch.__version__}

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
