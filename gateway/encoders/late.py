"""ColBERT-style late-interaction encoders: one L2-normalized vector per token.

prepare = tokenize with the marker (and [MASK] expansion for queries); run = the graph, keeping
each item's rows that are neither padding nor skipped; finish = projection (when the graph has
none) and L2 normalization, one matrix per text; ranking is MaxSim over those matrices.

Faithful to PyLate (`pylate/models/colbert.py`, tokenize() and encode()), which the tests
check token by token:
- the text is stripped (sentence-transformers does) and tokenized with truncation at
  length - 1, so that the marker fits; the marker id goes right after [CLS];
- queries are padded with [MASK] up to query_length (query expansion); the [MASK] positions
  are attended only if attend_to_expansion_tokens, but their vectors are always kept;
- documents keep the rows that are neither padding nor on the skiplist; skiplist words become
  ids by an exact vocabulary lookup, as PyLate's convert_tokens_to_ids (so with byte-level
  BPE, " ." is a different token from "." and stays);
- every kept row is L2-normalized, after the projection when the graph does not apply it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from gateway.backends.kv_cache import one_row_inputs
from gateway.encoders.base import Capability, EncodeOptions, Encoder, find_output
from gateway.encoders.pairs import PreparedPairs
from gateway.encoders.projection import Projection, load_projection
from gateway.encoders.text import TOKEN_ROLES, map_graph_inputs
from gateway.encoders.tokenization import encode_texts, load_tokenizer
from gateway.errors import InvalidRequest, ModelLoadError
from gateway.runtime import GraphInfo, Runtime
from gateway.scoring import ScoreScale, maxsim, relevance_from_maxsim
from gateway.specs import LateModelSpec

# Output names, in order of preference: next-plaid/PyLate exports name the projected,
# normalized token vectors "output"; plain transformer exports emit hidden states.
TOKEN_OUTPUTS = ("output", "last_hidden_state", "token_embeddings")
_MASK_TOKENS = ("[MASK]", "<mask>")
NORM_EPS = 1e-12  # torch.nn.functional.normalize's default


@dataclass(frozen=True, slots=True)
class LateTokens:
    """One prepared text: token ids with the marker (and [MASK] expansion for queries)."""

    ids: np.ndarray  # int64 [length]
    attention: np.ndarray  # int64 [length]
    keep: np.ndarray  # bool [length]: the rows whose vectors are returned
    is_query: bool
    truncated: bool
    text_tokens: int  # tokens from the text itself, with special tokens and marker

    @property
    def length(self) -> int:
        """What the item costs in a padded batch: every position runs through the model."""
        return len(self.ids)

    @property
    def tokens(self) -> int:
        """Tokens read from the text (usage): [MASK] expansion is not counted."""
        return self.text_tokens

    @property
    def vectors(self) -> int:
        """How many token vectors the item yields."""
        return int(self.keep.sum())


def pick_token_output(graph: GraphInfo, configured: str | None, model: str) -> str:
    """The graph output holding one vector per token (rank 3: batch, sequence, width)."""
    output = find_output(graph, configured, model, TOKEN_OUTPUTS, rank=3)
    if output is None or len(output.shape) != 3:
        raise ModelLoadError(
            f"model {model}: no per-token output (rank 3) among {sorted(graph.output_names)}; "
            "a late-interaction model needs one vector per token"
        )
    return output.name


def normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    normalized: np.ndarray = x / np.maximum(norms, NORM_EPS)
    return normalized


class LateInteractionEncoder(Encoder[str, LateTokens, list[np.ndarray]]):
    """A ColBERT model described by a LateModelSpec: texts -> [tokens, dim] float32 matrices."""

    capabilities = frozenset({Capability.MULTIVECTOR, Capability.SCORE_PAIRS})
    spec: LateModelSpec

    def __init__(self, spec: LateModelSpec, paths: dict[str, Path], runtime: Runtime) -> None:
        self.spec = spec
        # Queries and documents truncate at different lengths. A tokenizer's truncation is
        # state, so each side gets its own instance rather than toggling one between threads.
        self.query_tokenizer = load_tokenizer(
            paths["tokenizer"], self._budget(spec.query_length, spec.query_prefix)
        )
        self.document_tokenizer = load_tokenizer(
            paths["tokenizer"], self._budget(spec.document_length, spec.document_prefix)
        )
        self.query_prefix_id = self._marker(spec.query_prefix, "query_prefix")
        self.document_prefix_id = self._marker(spec.document_prefix, "document_prefix")
        self.mask_id = self._mask_id(self.query_tokenizer)
        self.skiplist_ids = self._skiplist_ids(self.document_tokenizer, spec.skiplist)
        self.session, self.graph = runtime.load(paths["model"])
        self.input_names = map_graph_inputs(self.graph, spec.inputs, TOKEN_ROLES, spec.name)
        self.output_name = pick_token_output(self.graph, spec.output, spec.name)
        self.one_row_inputs = tuple(one_row_inputs(self.graph.inputs))
        self.projection: Projection | None = (
            load_projection(paths["projection"]) if "projection" in paths else None
        )
        self._check_widths()

    # -- load-time lookups --------------------------------------------------------------------

    def _marker(self, marker: str, field: str) -> int | None:
        if not marker:
            return None
        # Exact lookup, trailing space included: PyLate registers "[Q] " itself as a token.
        # PyLate would fall back to [UNK] for a missing marker; a wrong file must fail loudly.
        marker_id = self.query_tokenizer.token_to_id(marker)
        if marker_id is None:
            raise ModelLoadError(
                f"model {self.spec.name}: {field} {marker!r} is not a token of the tokenizer"
            )
        return marker_id

    @staticmethod
    def _budget(length: int, marker: str) -> int:
        # PyLate sets max_seq_length = length - 1 when a marker will be inserted.
        return length - 1 if marker else length

    def _mask_id(self, tokenizer: Tokenizer) -> int:
        for token in _MASK_TOKENS:
            token_id = tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        raise ModelLoadError(
            f"model {self.spec.name}: the tokenizer has no mask token to pad queries with"
        )

    @staticmethod
    def _skiplist_ids(tokenizer: Tokenizer, words: Sequence[str]) -> np.ndarray:
        # As transformers' convert_tokens_to_ids, which PyLate calls: a word that is not a
        # token maps to the unknown token, so [UNK] rows are then skipped too.
        unk_token = getattr(tokenizer.model, "unk_token", None)
        unk_id = tokenizer.token_to_id(unk_token) if unk_token else None
        found = [tokenizer.token_to_id(word) for word in words]
        ids = {token for token in found if token is not None}
        if None in found and unk_id is not None:
            ids.add(unk_id)
        return np.array(sorted(ids), dtype=np.int64)

    def _check_widths(self) -> None:
        width = self.graph.outputs[self.graph.output_names.index(self.output_name)].shape[-1]
        if self.projection is not None:
            if self.projection.out_features != self.spec.dim:
                raise ModelLoadError(
                    f"model {self.spec.name}: projection maps to {self.projection.out_features}, "
                    f"but dim is {self.spec.dim}"
                )
            expected = self.projection.in_features
        else:
            expected = self.spec.dim
        # Widths are usually static in the graph; when they are not, run() checks.
        if isinstance(width, int) and width != expected:
            raise ModelLoadError(
                f"model {self.spec.name}: output {self.output_name!r} is {width} wide, "
                f"expected {expected}"
                + (" (the projection's input)" if self.projection else " (dim)")
            )

    # -- preparing inputs (any thread) --------------------------------------------------------

    def tokenize(self, texts: Sequence[str], *, task: str | None = None) -> list[LateTokens]:
        """Prepare queries or documents (off the event loop); each item says if it was cut.

        Cutting is the model's design (PyLate always truncates at query_length and
        document_length); a caller whose client asked not to truncate refuses cut items.
        """
        task = task or self.spec.default_task
        if task not in ("query", "document"):
            raise InvalidRequest(
                f"model '{self.spec.name}' has no task {task!r}; choose query or document",
                param="task",
            )
        is_query = task == "query"
        tokenizer = self.query_tokenizer if is_query else self.document_tokenizer
        # sentence-transformers strips every text before tokenizing; PyLate inherits that.
        encodings = encode_texts(tokenizer, [str(text).strip() for text in texts])
        return [
            self._prepare(
                np.asarray(encoding.ids, dtype=np.int64),
                is_query=is_query,
                truncated=bool(encoding.overflowing),
            )
            for encoding in encodings
        ]

    def _prepare(self, ids: np.ndarray, *, is_query: bool, truncated: bool) -> LateTokens:
        marker = self.query_prefix_id if is_query else self.document_prefix_id
        if marker is not None:
            ids = np.concatenate([ids[:1], np.array([marker], dtype=np.int64), ids[1:]])
        text_tokens = len(ids)
        attention = np.ones(text_tokens, dtype=np.int64)
        if is_query:
            if self.spec.do_query_expansion:
                expansion = self.spec.query_length - text_tokens
                ids = np.concatenate([ids, np.full(expansion, self.mask_id, dtype=np.int64)])
                attend = int(self.spec.attend_to_expansion_tokens)
                attention = np.concatenate([attention, np.full(expansion, attend, np.int64)])
            keep = np.ones(len(ids), dtype=bool)  # queries keep every row, [MASK] included
        else:
            keep = ~np.isin(ids, self.skiplist_ids)
        return LateTokens(ids, attention, keep, is_query, truncated, text_tokens)

    def token_limit(self, options: EncodeOptions) -> int:
        task = options.task or self.spec.default_task
        return self.spec.query_length if task == "query" else self.spec.document_length

    def prepare(self, inputs: Sequence[str], options: EncodeOptions) -> list[LateTokens]:
        return self.tokenize(inputs, task=options.task)

    # -- inference (the inference thread) -----------------------------------------------------

    def run(self, items: Sequence[LateTokens]) -> list[np.ndarray]:
        """Per item: the graph's rows it keeps (padding, skiplist dropped), not yet projected.
        A graph whose token inputs fix the batch to 1 runs each item alone, at its own length."""
        if self.one_row_inputs and len(items) > 1:
            return [rows for item in items for rows in self.run([item])]
        longest = max(item.length for item in items)
        # Padding is [MASK] with attention 0, as PyLate pads (pad_token = mask_token).
        ids = np.full((len(items), longest), self.mask_id, dtype=np.int64)
        attention = np.zeros((len(items), longest), dtype=np.int64)
        for row, item in enumerate(items):
            ids[row, : item.length] = item.ids
            attention[row, : item.length] = item.attention
        arrays = {
            "input_ids": ids,
            "attention_mask": attention,
            # One segment: PyLate inserts type 0 for the marker and every token is type 0.
            "token_type_ids": np.zeros_like(ids),
        }
        feed = {name: arrays[role] for role, name in self.input_names.items()}
        (output,) = self.session.run([self.output_name], feed)
        return [
            np.asarray(output[row, : item.length][item.keep], dtype=np.float32)
            for row, item in enumerate(items)
        ]

    # -- finishing (any thread) -----------------------------------------------------------------

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> list[np.ndarray]:
        """Project (when the graph does not) and L2-normalize every row: one matrix per item."""
        if not raw:
            return []
        # All rows of all items in one go, then split back.
        rows = np.concatenate(list(raw)).astype(np.float32, copy=False)
        if self.projection is not None:
            rows = self.projection(rows)
        if rows.shape[-1] != self.spec.dim:
            raise ModelLoadError(
                f"model {self.spec.name}: token vectors are {rows.shape[-1]} wide, "
                f"but dim is {self.spec.dim}"
            )
        rows = normalize_rows(rows).astype(np.float32, copy=False)
        splits = np.cumsum([len(part) for part in raw])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(rows, splits)]

    # -- ranking by MaxSim --------------------------------------------------------------------

    def document_window(self, query: str) -> int:
        """document_length less the special tokens and the document marker."""
        budget = self._budget(self.spec.document_length, self.spec.document_prefix)
        return budget - self.document_tokenizer.num_special_tokens_to_add(False)

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> PreparedPairs[LateTokens]:
        (query_item,) = self.tokenize([query], task="query")
        document_items = self.tokenize(documents, task="document")
        return PreparedPairs(
            # One submit: the Batcher length-sorts the query among the documents.
            items=[query_item, *document_items],
            query_truncated=query_item.truncated,
            documents_truncated=[i for i, item in enumerate(document_items) if item.truncated],
            tokens=query_item.text_tokens + sum(item.text_tokens for item in document_items),
            limit=f"{self.spec.document_length} tokens",
        )

    def score_pairs(
        self, raw: Sequence[np.ndarray], scale: ScoreScale
    ) -> tuple[np.ndarray, np.ndarray]:
        """MaxSim; relevance is (MaxSim / query vectors + 1) / 2, in [0, 1] (gateway.scoring)."""
        query, *documents = self.finish(raw, EncodeOptions())
        scores = maxsim(query, documents)
        return scores, relevance_from_maxsim(scores, len(query), scale)
