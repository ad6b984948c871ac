"""SPLADE sparse lexical encoders: texts -> one weight per vocabulary id, as (index, value) pairs.

prepare = tokenize (no prefixes), cut at the context length; run = the masked-language-model
graph, then each text's logits pooled over its own tokens (padding never counts), kept as the
non-zero entries, indices ascending; finish = those as SparseVectors.

A SPLADE model also ranks documents (PairScorer): query and documents are encoded alike (no
prefixes, markers or pairs), each document scored by the dot product of its weights with the
query's, as SPLADE retrieves (gateway.scoring.sparse_dot).

The pooling follows sentence-transformers' SpladePooling, which TEI and fastembed compute the
same way: w_j = max over the text's tokens i of log(1 + relu(logit_ij)) (SPLADE v2 and later),
or the sum over them (the first SPLADE); `log1p_relu` applies log1p twice. Padding rows are
dropped, which is what their masking amounts to: masked logits become 0, and a 0 never beats
a weight (every weight is >= 0) nor adds to a sum. As TEI's `sparsify` and fastembed's
`nonzero`, an entry is kept when its weight is not 0.

The graph's logits are [batch, tokens, vocab] (30522 floats a token for BERT): run() reduces
each text to one vocabulary row where they are produced, and that row to its non-zero entries
(8 bytes each), so neither a batch's logits nor a 122 KB row per text is kept alive until every
request of the batch has finished (a rerank of 10,000 chunks would hold 1.2 GB of rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from gateway.encoders.base import Capability, EncodeOptions, find_output
from gateway.encoders.pairs import PreparedPairs, ScoreScale
from gateway.encoders.text import TokenGraphEncoder, TokenizedText
from gateway.errors import ModelLoadError
from gateway.runtime import GraphInfo, Runtime
from gateway.scoring import relevance_from_sparse_dot, sparse_dot
from gateway.specs import SparseModelSpec

# Output names of masked-language-model exports (optimum and transformers' "logits").
LOGIT_OUTPUTS = ("logits", "output")

# One non-zero weight as run() hands it over (a record array is an ndarray, as the Batcher wants).
PAIR = np.dtype([("index", np.int32), ("value", np.float32)])

Pooling = Literal["max", "sum"]
Activation = Literal["relu", "log1p_relu"]


@dataclass(frozen=True, slots=True)
class SparseVector:
    """One text's non-zero weights: vocabulary ids ascending, and their weights (all > 0).
    Read-only: the embedding cache hands the same arrays to every request that repeats a text."""

    indices: np.ndarray  # int32 [n]: a vocabulary fits, and a cached weight costs 8 bytes, not 12
    values: np.ndarray  # float32 [n]

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def nbytes(self) -> int:
        return self.indices.nbytes + self.values.nbytes


def activate(logits: np.ndarray, activation: Activation) -> np.ndarray:
    """log(1 + relu(x)), and log1p once more for `log1p_relu`."""
    weights: np.ndarray = np.log1p(np.maximum(logits, 0))
    if activation == "log1p_relu":
        weights = np.log1p(weights)
    return weights


def splade_pool(rows: np.ndarray, pooling: Pooling, activation: Activation) -> np.ndarray:
    """One text's logits [tokens, vocab], padding already dropped -> [vocab] float32 weights."""
    if pooling == "max":
        # relu and log1p never decrease, so the max commutes with them: reducing first
        # transforms one row instead of tokens x vocab values, with the same result.
        pooled = activate(rows.max(axis=0), activation)
    else:
        pooled = activate(rows, activation).sum(axis=0)
    return np.ascontiguousarray(pooled, dtype=np.float32)


def nonzero_pairs(weights: np.ndarray) -> np.ndarray:
    """The non-zero entries of a [vocab] weight row, as PAIR records, indices ascending."""
    indices = np.flatnonzero(weights)
    pairs = np.empty(len(indices), dtype=PAIR)
    pairs["index"] = indices
    pairs["value"] = weights[indices]
    return pairs


def from_pairs(pairs: np.ndarray) -> SparseVector:
    """The SparseVector of `nonzero_pairs`' records, read-only (the cache shares it)."""
    vector = SparseVector(pairs["index"].copy(), pairs["value"].copy())
    vector.indices.flags.writeable = vector.values.flags.writeable = False
    return vector


def pick_logits_output(
    graph: GraphInfo, configured: str | None, model: str, vocab_size: int | None
) -> str:
    """The [batch, tokens, vocab] logits output, its width checked against `vocab_size`."""
    output = find_output(graph, configured, model, LOGIT_OUTPUTS, rank=3)
    if output is None or len(output.shape) != 3:
        raise ModelLoadError(
            f"model {model}: no [batch, tokens, vocab] logits output among "
            f"{sorted(graph.output_names)}; a sparse (SPLADE) model needs a masked-language-model "
            "head"
        )
    name, width = output.name, output.shape[-1]
    if vocab_size is not None and isinstance(width, int) and width != vocab_size:
        raise ModelLoadError(
            f"model {model}: output {name!r} is {width} wide, but vocab_size is {vocab_size}"
        )
    return name


class SparseEncoder(TokenGraphEncoder[str, list[SparseVector]]):
    """A SPLADE model described by a SparseModelSpec: texts -> SparseVector each."""

    capabilities = frozenset({Capability.EMBED_SPARSE})
    spec: SparseModelSpec

    def __init__(self, spec: SparseModelSpec, paths: dict[str, Path], runtime: Runtime) -> None:
        super().__init__(spec, paths, runtime)
        self.output_name = pick_logits_output(self.graph, spec.output, spec.name, spec.vocab_size)

    def token_limit(self, options: EncodeOptions) -> int:
        return options.limit or self.spec.max_tokens

    def prepare(self, inputs: Sequence[str], options: EncodeOptions) -> list[TokenizedText]:
        """Tokenize, cut at options.limit (default max_tokens); each item says if it was cut."""
        return self.tokenize_within(inputs, self.token_limit(options))

    def count_tokens(self, text: str, options: EncodeOptions) -> int:
        """The uncut length of `text`, special tokens included (for a too-long error)."""
        return self.lengths.count(text)

    def cache_variant(self, options: EncodeOptions) -> str:
        """What of `options` changes a text's vector, for the embedding cache's key: the cut
        only (no prefix is put before a text; the task, width and normalization are unused)."""
        return f"limit={self.token_limit(options)}"

    def run(self, items: Sequence[TokenizedText]) -> list[np.ndarray]:
        """Per item: its non-zero weights (PAIR records), pooled over its own tokens."""
        logits = self.forward(items)
        vocab_size = self.spec.vocab_size
        if logits.ndim != 3 or (vocab_size is not None and logits.shape[-1] != vocab_size):
            raise ModelLoadError(
                f"model {self.spec.name}: logits are {logits.shape}, expected "
                f"[batch, tokens, {vocab_size or 'vocab'}]"
            )
        pooling, activation = self.spec.pooling, self.spec.activation
        return [
            nonzero_pairs(splade_pool(logits[row, : item.length], pooling, activation))
            for row, item in enumerate(items)
        ]

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> list[SparseVector]:
        return [from_pairs(pairs) for pairs in raw]

    # -- ranking by the dot product (PairScorer) -------------------------------------------------

    def document_window(self, query: str) -> int:
        """max_tokens less the special tokens: a document is encoded apart from the query."""
        return self.spec.max_tokens - self.tokenizer.num_special_tokens_to_add(False)

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> PreparedPairs[TokenizedText]:
        """The query and the documents, each cut at max_tokens, as one list to run."""
        items = self.prepare([query, *documents], EncodeOptions())
        return PreparedPairs(
            items=items,
            query_truncated=items[0].truncated,
            documents_truncated=[i for i, item in enumerate(items[1:]) if item.truncated],
            tokens=sum(item.length for item in items),
            limit=f"{self.spec.max_tokens} tokens",
        )

    def score_pairs(
        self, raw: Sequence[np.ndarray], scale: ScoreScale
    ) -> tuple[np.ndarray, np.ndarray]:
        """The dot product of the query's weights with each document's (raw), and s / (s + q.q)
        in [0, 1) (gateway.scoring)."""
        query, *documents = self.finish(raw, EncodeOptions())
        scores = sparse_dot(query, documents)
        query_self = float(sparse_dot(query, [query])[0])
        return scores, relevance_from_sparse_dot(scores, query_self, scale)
