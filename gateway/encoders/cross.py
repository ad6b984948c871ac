"""Cross-encoder rerankers: (query, document) pair -> one relevance logit.

Tokenized as transformers does for `tokenizer(query, document, truncation=True)`: the pair
template of tokenizer.json ([CLS] q [SEP] d [SEP], token types 0 then 1) and longest-first
truncation, which trims the longer side first so a long document cannot push the query out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gateway.encoders.base import Capability, EncodeOptions, find_output
from gateway.encoders.pairs import PreparedPairs
from gateway.encoders.text import TokenGraphEncoder, TokenizedText
from gateway.errors import ModelLoadError
from gateway.runtime import GraphInfo, Runtime
from gateway.scoring import ScoreScale, relevance_from_logits
from gateway.specs import CrossEncoderSpec

LOGIT_OUTPUTS = ("logits", "output", "scores")


def pick_logits_output(graph: GraphInfo, configured: str | None, model: str) -> str:
    """The [batch, 1] logits output; heads with several labels are refused, not guessed at."""
    output = find_output(graph, configured, model, LOGIT_OUTPUTS, rank=2)
    if output is None or len(output.shape) != 2:
        raise ModelLoadError(f"model {model}: no [batch, labels] logits output in the graph")
    name, labels = output.name, output.shape[1]
    if isinstance(labels, int) and labels != 1:
        raise ModelLoadError(
            f"model {model}: the head has {labels} labels; a reranker needs a single logit"
        )
    return name


class CrossEncoder(TokenGraphEncoder[tuple[str, str], np.ndarray]):
    """A sequence-pair classifier described by a CrossEncoderSpec: pairs -> [n] float64 logits."""

    capabilities = frozenset({Capability.SCORE_PAIRS})
    spec: CrossEncoderSpec

    def __init__(self, spec: CrossEncoderSpec, paths: dict[str, Path], runtime: Runtime) -> None:
        super().__init__(spec, paths, runtime)
        self.output_name = pick_logits_output(self.graph, spec.output, spec.name)

    def tokenize_pairs(self, query: str, documents: Sequence[str]) -> list[TokenizedText]:
        """One item per document, paired with the query; each item says if the pair was cut
        to max_tokens."""
        return self.prepare([(query, document) for document in documents], EncodeOptions())

    def prepare(
        self, inputs: Sequence[tuple[str, str]], options: EncodeOptions
    ) -> list[TokenizedText]:
        encodings = self.tokenizer.encode_batch(list(inputs))
        return [TokenizedText.from_encoding(encoding) for encoding in encodings]

    def run(self, items: Sequence[TokenizedText]) -> list[np.ndarray]:
        """One [1] float32 array (the logit) per pair."""
        logits = self.forward(items)
        if logits.ndim != 2 or logits.shape[1] != 1:
            raise ModelLoadError(
                f"model {self.spec.name}: logits are {logits.shape}, expected [batch, 1]"
            )
        return [np.asarray(row, dtype=np.float32) for row in logits]

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> np.ndarray:
        """The logits, [n] float64."""
        if not raw:
            return np.zeros(0, dtype=np.float64)
        return np.concatenate(raw).astype(np.float64)

    def document_window(self, query: str) -> int:
        """max_tokens less the pair's special tokens and the query's tokens; at least half of
        what the special tokens leave, as longest-first truncation cuts a long query to share."""
        room = self.spec.max_tokens - self.tokenizer.num_special_tokens_to_add(True)
        query_tokens = len(self.tokenizer.encode(query, add_special_tokens=False).ids)
        return max(room - query_tokens, room // 2)

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> PreparedPairs[TokenizedText]:
        items = self.tokenize_pairs(query, documents)
        return PreparedPairs(
            items=items,
            query_truncated=False,  # longest-first: the query is cut only with its document
            documents_truncated=[i for i, item in enumerate(items) if item.truncated],
            tokens=sum(item.length for item in items),
            limit=f"{self.spec.max_tokens} tokens with the query",
        )

    def score_pairs(
        self, raw: Sequence[np.ndarray], scale: ScoreScale
    ) -> tuple[np.ndarray, np.ndarray]:
        logits = self.finish(raw, EncodeOptions())
        return logits, relevance_from_logits(logits, scale)
