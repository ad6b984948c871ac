"""Sentence embedders: prepare (prefix, tokenize) -> run (ONNX) -> finish (pool, layer_norm,
Matryoshka slice, L2). Also the token-graph plumbing the cross-encoder shares, and ranking by
cosine, which lets any text embedder rerank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from gateway.backends.kv_cache import one_row_inputs, past_inputs
from gateway.encoders.base import (
    Capability,
    EncodeOptions,
    Encoder,
    InputT,
    OutT,
    find_output,
    own_rows,
)
from gateway.encoders.context import TokenizerLengths
from gateway.encoders.decoder import POSITION_IDS, DecoderInputs
from gateway.encoders.pairs import PreparedPairs, ScoreScale
from gateway.encoders.tokenization import encode_texts, load_tokenizer, pad_id
from gateway.errors import ModelLoadError, UnsupportedInput
from gateway.runtime import GraphInfo, Runtime
from gateway.scoring import cosine_scores, relevance_from_cosine
from gateway.specs import CrossEncoderSpec, SparseModelSpec, TextModelSpec

TOKEN_ROLES = ("input_ids", "attention_mask", "token_type_ids")
# What a decoder graph may take besides (its KV-cache inputs are recognized by name).
DECODER_ROLES = (*TOKEN_ROLES, POSITION_IDS)
HIDDEN_STATE_OUTPUTS = ("last_hidden_state", "token_embeddings")
LAYER_NORM_EPS = 1e-5  # torch.nn.functional.layer_norm's default, as in nomic's model card


@dataclass(frozen=True, slots=True)
class TokenizedText:
    ids: np.ndarray
    type_ids: np.ndarray
    truncated: bool

    @property
    def length(self) -> int:
        return len(self.ids)

    @property
    def tokens(self) -> int:
        return len(self.ids)

    @classmethod
    def from_encoding(cls, encoding: Encoding) -> TokenizedText:
        """A tokenizers Encoding; truncation is on, so any overflow means the input was cut."""
        return cls(
            np.asarray(encoding.ids, dtype=np.int64),
            np.asarray(encoding.type_ids, dtype=np.int64),
            bool(encoding.overflowing),
        )


def map_graph_inputs(
    graph: GraphInfo,
    overrides: dict[str, str],
    roles: Sequence[str],
    model: str,
    fed_elsewhere: Sequence[str] = (),
) -> dict[str, str]:
    """role -> graph input name; every graph input must be understood (a role, or one of
    `fed_elsewhere`)."""
    names = set(graph.input_names)
    mapping: dict[str, str] = {}
    for role in roles:
        name = overrides.get(role, role)
        if name in names:
            mapping[role] = name
    unknown = names - set(mapping.values()) - set(fed_elsewhere)
    if unknown:
        raise ModelLoadError(
            f"model {model}: graph inputs {sorted(unknown)} are not understood; "
            f"map them to {list(roles)} with `inputs:` in registry.yaml"
        )
    if "input_ids" not in mapping:
        raise ModelLoadError(f"model {model}: the graph has no input_ids input")
    return mapping


def pick_output(graph: GraphInfo, configured: str | None, model: str) -> tuple[str, bool]:
    """(output name, already pooled): hidden states of rank 3, or a pooled rank-2 output."""
    output = find_output(graph, configured, model, HIDDEN_STATE_OUTPUTS, rank=3)
    output = output or find_output(graph, None, model, (), rank=2)
    if output is None:
        raise ModelLoadError(f"model {model}: no float output of rank 3 or 2 in the graph")
    return output.name, len(output.shape) == 2


def sample_tokens(tokenizer: Tokenizer, count: int, tokens: int) -> list[TokenizedText]:
    """Made-up inputs of a given length (what they say does not matter, only their cost)."""
    token = min(1000, tokenizer.get_vocab_size() - 1)
    ids, types = np.full(tokens, token, dtype=np.int64), np.zeros(tokens, dtype=np.int64)
    return [TokenizedText(ids, types, False) for _ in range(count)]


def pad_batch(items: Sequence[TokenizedText], pad: int) -> dict[str, np.ndarray]:
    """Right-pad token rows into [batch, longest] arrays with an attention mask."""
    longest = max(item.length for item in items)
    ids = np.full((len(items), longest), pad, dtype=np.int64)
    types = np.zeros((len(items), longest), dtype=np.int64)
    mask = np.zeros((len(items), longest), dtype=np.int64)
    for row, item in enumerate(items):
        ids[row, : item.length] = item.ids
        types[row, : item.length] = item.type_ids
        mask[row, : item.length] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def stack_rows(outputs: Sequence[np.ndarray]) -> np.ndarray:
    """The outputs of one-row runs as one batch's output: along the batch axis, a token axis
    (axis 1, where rows of different lengths differ) right-padded with zeros. What lies past a
    row's length is padding, which no caller reads."""
    first = outputs[0]
    if all(output.shape == first.shape for output in outputs):
        return np.concatenate(outputs)
    longest = max(output.shape[1] for output in outputs)
    batch = np.zeros((len(outputs), longest, *first.shape[2:]), dtype=first.dtype)
    for row, output in enumerate(outputs):
        batch[row, : output.shape[1]] = output[0]
    return batch


def postprocess(
    pooled: np.ndarray, *, layer_norm: bool, dimensions: int, normalize: bool
) -> np.ndarray:
    """Nomic's published order: layer_norm over the full width, slice, then L2-normalize."""
    x = np.array(pooled, dtype=np.float32, copy=True)
    if layer_norm:
        x -= x.mean(axis=1, keepdims=True)
        x /= np.sqrt(x.var(axis=1, keepdims=True) + LAYER_NORM_EPS)
    x = x[:, :dimensions]
    if normalize:
        # np.linalg.norm's own arithmetic for a real array along one axis, without its
        # argument checks (~4 us of a one-text request): the same float32 bits.
        x /= np.maximum(np.sqrt(np.add.reduce(x * x, axis=1, keepdims=True)), 1e-12)
    return np.ascontiguousarray(x)


class TokenGraphEncoder(Encoder[InputT, TokenizedText, OutT]):
    """What every encoder of token ids shares: tokenizer, graph inputs, padded runs."""

    output_name: str
    decoder = DecoderInputs()  # none, until a decoder graph's are found at load

    def __init__(
        self,
        spec: TextModelSpec | CrossEncoderSpec | SparseModelSpec,
        paths: dict[str, Path],
        runtime: Runtime,
        end_token: str | None = None,
    ) -> None:
        self.spec = spec
        self.max_tokens = spec.max_tokens  # the shared tokenizer's cut
        self.tokenizer = load_tokenizer(paths["tokenizer"], spec.max_tokens, end_token)
        self.lengths = TokenizerLengths(self.tokenizer)
        self.pad_id = pad_id(self.tokenizer)
        self.session, self.graph = runtime.load(paths["model"])
        cache = [tensor.name for tensor in past_inputs(self.graph)]
        self.input_names = map_graph_inputs(
            self.graph, spec.inputs, DECODER_ROLES, spec.name, fed_elsewhere=cache
        )
        position_ids = self.input_names.pop(POSITION_IDS, None)
        self.decoder = DecoderInputs.of(self.graph, position_ids, spec.name)
        self.one_row_inputs = tuple(one_row_inputs(self.graph.inputs))

    def tokenize_within(self, texts: Sequence[str], limit: int) -> list[TokenizedText]:
        """`texts` cut at `limit` tokens (special tokens included); each item says if it was
        cut. The shared tokenizer serves the model's own cut, a copy any other."""
        tokenizer = self.tokenizer if limit == self.max_tokens else self.lengths.at(limit)
        return [TokenizedText.from_encoding(e) for e in encode_texts(tokenizer, list(texts))]

    def sample_items(self, count: int, tokens: int) -> list[TokenizedText]:
        return sample_tokens(self.tokenizer, count, tokens)

    @property
    def document_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def forward(self, items: Sequence[TokenizedText]) -> np.ndarray:
        """The graph's output for a right-padded batch of `items`. A graph that takes one row
        a run (`one_row_inputs`) runs each item alone, as a batch of one holding it would."""
        if self.one_row_inputs and len(items) > 1:
            return stack_rows([self.forward(items[row : row + 1]) for row in range(len(items))])
        arrays = pad_batch(items, self.pad_id)
        feed = {name: arrays[role] for role, name in self.input_names.items()}
        self.decoder.add_to(feed, arrays["attention_mask"])
        (output,) = self.session.run([self.output_name], feed)
        return np.asarray(output)


class TextEncoder(TokenGraphEncoder[str, np.ndarray]):
    """A sentence embedder described by a TextModelSpec (BERT-family, or a decoder pooled at
    its last token): texts -> [n, width]."""

    capabilities = frozenset({Capability.EMBED_TEXT})
    spec: TextModelSpec

    def __init__(self, spec: TextModelSpec, paths: dict[str, Path], runtime: Runtime) -> None:
        super().__init__(spec, paths, runtime, spec.end_token)
        self.output_name, self.output_is_pooled = pick_output(self.graph, spec.output, spec.name)

    def prefixes_for(self, texts: Sequence[str], task: str | None) -> list[str]:
        return self.spec.prefixes_for(texts, task)

    def token_limit(self, options: EncodeOptions) -> int:
        return options.limit or self.spec.max_tokens

    def prepare(self, inputs: Sequence[str], options: EncodeOptions) -> list[TokenizedText]:
        """Tokenize with the task prefix, cut at options.limit (default max_tokens); each item
        says if it was cut."""
        prefixes = self.prefixes_for(inputs, options.task)
        texts = [p + t for p, t in zip(prefixes, inputs, strict=True)]
        return self.tokenize_within(texts, self.token_limit(options))

    def count_tokens(self, text: str, options: EncodeOptions) -> int:
        """The uncut length of `text` with its prefix, special tokens included."""
        (prefix,) = self.prefixes_for([text], options.task)
        return self.lengths.count(prefix + text)

    def token_states(self, items: Sequence[TokenizedText]) -> list[np.ndarray]:
        """The graph's per-token hidden states, [tokens, hidden] per item (TEI's /embed_all)."""
        if self.output_is_pooled:
            raise UnsupportedInput(
                f"model '{self.spec.name}' gives pooled vectors only; it has no token states",
                param="model",
            )
        output = self.forward(items)
        return [np.array(output[row, : item.length]) for row, item in enumerate(items)]

    def run(self, items: Sequence[TokenizedText]) -> list[np.ndarray]:
        """Per item: its pooled row (mean, CLS or last over its own token rows, or the graph's
        pooled output).

        Pooled here, on the device thread, rather than in finish: a request keeps its raw
        arrays until its last batch ends, and views into each batch's padded hidden states kept
        all of them (25 MiB per MiniLM batch of 64 x 256 tokens: 800 MiB for 2,048 inputs).
        Mean over each item's own rows: the same reduction whatever it was batched with. Pooled
        rows are copied (~1 us each) so that one row does not keep its batch mates' alive.
        """
        output = self.forward(items)
        if self.output_is_pooled:
            return own_rows(output)
        if self.spec.pooling == "cls":
            return own_rows(output[:, 0])
        if self.spec.pooling == "last":  # right-padded: a row's last real token is length - 1
            return [np.array(output[row, item.length - 1]) for row, item in enumerate(items)]
        return [output[row, : item.length].mean(axis=0) for row, item in enumerate(items)]

    def pool(self, raw: Sequence[np.ndarray]) -> np.ndarray:
        """The pooled rows `run` gave, as [n, hidden] float32 (what the embedding cache holds)."""
        if not raw:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        # np.array, not np.stack: the same [n, hidden] array, ~2.4 us cheaper per request.
        return np.array(raw).astype(np.float32, copy=False)

    def finish_pooled(self, pooled: np.ndarray, options: EncodeOptions) -> np.ndarray:
        """layer_norm, Matryoshka slice, L2 (unless the request or the registry turns it off)."""
        return postprocess(
            pooled,
            layer_norm=self.spec.layer_norm,
            dimensions=options.dimensions or self.spec.dim,
            normalize=options.normalize and self.spec.normalize,
        )

    def finish(self, raw: Sequence[np.ndarray], options: EncodeOptions) -> np.ndarray:
        return self.finish_pooled(self.pool(raw), options)

    # -- ranking by cosine (any embedder can rerank) ---------------------------------------------

    def _pair_task(self, side: str) -> str | None:
        """The task a query or a document is embedded with when ranking (None: the default)."""
        return side if side in self.spec.tasks else None

    def document_window(self, query: str) -> int:
        """max_tokens less the special tokens and the document task's prefix."""
        (prefix,) = self.prefixes_for([""], self._pair_task("document"))
        prefix_tokens = len(self.tokenizer.encode(prefix, add_special_tokens=False).ids)
        return (
            self.spec.max_tokens - self.tokenizer.num_special_tokens_to_add(False) - prefix_tokens
        )

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> PreparedPairs[TokenizedText]:
        query_items = self.prepare([query], EncodeOptions(self._pair_task("query")))
        document_items = self.prepare(documents, EncodeOptions(self._pair_task("document")))
        items = [*query_items, *document_items]
        return PreparedPairs(
            items=items,
            query_truncated=query_items[0].truncated,
            documents_truncated=[i for i, item in enumerate(document_items) if item.truncated],
            tokens=sum(item.length for item in items),
            limit=f"{self.spec.max_tokens} tokens",
        )

    def score_pairs(
        self, raw: Sequence[np.ndarray], scale: ScoreScale
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of the query against each document (raw), and (cosine + 1) / 2 in [0, 1]."""
        vectors = self.finish(raw, EncodeOptions())
        cosine = cosine_scores(vectors[0], vectors[1:])
        return cosine, relevance_from_cosine(cosine, scale)
