"""Reference embeddings computed without any gateway code, to compare the server against.

- all-MiniLM-L6-v2: sentence-transformers' own `encode(normalize_embeddings=True)`.
- nomic-embed-text v1.5's published recipe, in PyTorch: prefix + text -> HF tokenizer -> model ->
  masked mean pool -> F.layer_norm (no affine, eps 1e-5) over the full width -> slice to the
  Matryoshka width -> F.normalize. Each text runs alone, so no padding is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tools.exports import minilm_source

# nomic-embed-text v1.5's task prefixes, as its model card publishes them.
NOMIC_PREFIXES = {
    "query": "search_query: ",
    "document": "search_document: ",
    "clustering": "clustering: ",
    "classification": "classification: ",
}
NOMIC_DIMENSIONS = [768, 512, 256, 128, 64]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [n, d] arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def minilm_token_counter() -> Callable[[str], int]:
    """Tokens (special tokens included, no truncation) of all-MiniLM's tokenizer."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_source() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text).ids)


def sentence_transformers_minilm(texts: Sequence[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 through sentence-transformers (max_seq_length 256, mean pool, L2)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_source()), device="cpu")
    assert model.max_seq_length == 256
    return model.encode(list(texts), normalize_embeddings=True, batch_size=32)


class NomicReference:
    """The published nomic-embed-text recipe on a NomicBertModel saved with save_pretrained."""

    def __init__(self, torch_dir: Path, tokenizer_json: Path, max_tokens: int) -> None:
        from transformers import NomicBertModel, PreTrainedTokenizerFast

        self.model = NomicBertModel.from_pretrained(
            str(torch_dir), attn_implementation="eager"
        ).eval()
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json))
        self.max_tokens = max_tokens

    def pooled(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """Masked mean of last_hidden_state over every real token (prefix and specials too)."""
        import torch

        rows = []
        with torch.no_grad():
            for text in texts:
                encoded = self.tokenizer(
                    prefix + text, truncation=True, max_length=self.max_tokens, return_tensors="pt"
                )
                hidden = self.model(
                    input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]
                ).last_hidden_state
                mask = encoded["attention_mask"][..., None].to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(pooled[0])
        return torch.stack(rows).numpy()

    def embed(
        self,
        texts: Sequence[str],
        prefix: str,
        dims: Sequence[int] = NOMIC_DIMENSIONS,
        *,
        layer_norm: bool = True,
    ) -> dict[int, np.ndarray]:
        """The recipe's output at each width in `dims`. layer_norm=False gives the plain
        mean -> slice -> L2 variant, used only to show that the comparison tells them apart."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(self.pooled(texts, prefix))
        if layer_norm:
            x = F.layer_norm(x, normalized_shape=(x.shape[1],), eps=1e-5)
        return {dim: F.normalize(x[:, :dim], p=2, dim=1).numpy() for dim in dims}
