"""Sentence embedders: tokenize -> ONNX -> pool -> (layer_norm) -> Matryoshka slice -> L2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from gateway.encoders.base import Encoder
from gateway.encoders.context import TokenizerLengths
from gateway.encoders.tokenization import load_tokenizer, pad_id
from gateway.errors import ModelLoadError, UnsupportedInput
from gateway.registry import CrossEncoderSpec, TextModelSpec
from gateway.runtime import GraphInfo, Runtime

TOKEN_ROLES = ("input_ids", "attention_mask", "token_type_ids")
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

    @classmethod
    def from_encoding(cls, encoding: Encoding) -> TokenizedText:
        """A tokenizers Encoding; truncation is on, so any overflow means the input was cut."""
        return cls(
            np.asarray(encoding.ids, dtype=np.int64),
            np.asarray(encoding.type_ids, dtype=np.int64),
            bool(encoding.overflowing),
        )


def map_graph_inputs(
    graph: GraphInfo, overrides: dict[str, str], roles: Sequence[str], model: str
) -> dict[str, str]:
    """role -> graph input name; every graph input must be understood."""
    names = set(graph.input_names)
    mapping: dict[str, str] = {}
    for role in roles:
        name = overrides.get(role, role)
        if name in names:
            mapping[role] = name
    unknown = names - set(mapping.values())
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
    by_name = {t.name: t for t in graph.outputs}
    if configured is not None:
        if configured not in by_name:
            raise ModelLoadError(
                f"model {model}: output {configured!r} is not one of {sorted(by_name)}"
            )
        return configured, len(by_name[configured].shape) == 2
    for name in HIDDEN_STATE_OUTPUTS:
        if name in by_name:
            return name, False
    for rank in (3, 2):
        for tensor in graph.outputs:
            if tensor.is_float and len(tensor.shape) == rank:
                return tensor.name, rank == 2
    raise ModelLoadError(f"model {model}: no float output of rank 3 or 2 in the graph")


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
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(x)


class TokenGraphEncoder(Encoder):
    """What every encoder of token ids shares: tokenizer, graph inputs, padded runs."""

    output_name: str

    def __init__(
        self, spec: TextModelSpec | CrossEncoderSpec, paths: dict[str, Path], runtime: Runtime
    ) -> None:
        self.spec = spec
        self.tokenizer = load_tokenizer(paths["tokenizer"], spec.max_tokens)
        self.pad_id = pad_id(self.tokenizer)
        self.session, self.graph = runtime.load(paths["model"])
        self.input_names = map_graph_inputs(self.graph, spec.inputs, TOKEN_ROLES, spec.name)

    def sample_items(self, count: int, tokens: int) -> list[TokenizedText]:
        return sample_tokens(self.tokenizer, count, tokens)

    def forward(self, items: Sequence[TokenizedText]) -> np.ndarray:
        """The graph's output for a right-padded batch of `items`."""
        arrays = pad_batch(items, self.pad_id)
        feed = {name: arrays[role] for role, name in self.input_names.items()}
        (output,) = self.session.run([self.output_name], feed)
        return output


class TextEncoder(TokenGraphEncoder):
    """A BERT-family sentence embedder described by a TextModelSpec."""

    spec: TextModelSpec

    def __init__(self, spec: TextModelSpec, paths: dict[str, Path], runtime: Runtime) -> None:
        super().__init__(spec, paths, runtime)
        self.output_name, self.output_is_pooled = pick_output(self.graph, spec.output, spec.name)
        self.lengths = TokenizerLengths(self.tokenizer)

    def prefix(self, task: str | None) -> str:
        task = task or self.spec.default_task
        return self.spec.prefixes.get(task, "") if task else ""

    def tokenize(
        self, texts: Sequence[str], *, task: str | None, limit: int | None = None
    ) -> list[TokenizedText]:
        """Tokenize with the task prefix, cut at `limit` tokens (default max_tokens); each item
        says if it was cut."""
        prefix = self.prefix(task)
        same = limit is None or limit == self.spec.max_tokens
        tokenizer = self.tokenizer if same else self.lengths.at(limit)
        encodings = tokenizer.encode_batch([prefix + text for text in texts])
        return [TokenizedText.from_encoding(encoding) for encoding in encodings]

    def count_tokens(self, text: str, *, task: str | None) -> int:
        """The uncut length of `text` with its prefix, special tokens included."""
        return self.lengths.count(self.prefix(task) + text)

    def token_states(self, items: Sequence[TokenizedText]) -> list[np.ndarray]:
        """The graph's per-token hidden states, [tokens, hidden] per item (TEI's /embed_all)."""
        if self.output_is_pooled:
            raise UnsupportedInput(
                f"model '{self.spec.name}' gives pooled vectors only; it has no token states",
                param="model",
            )
        output = self.forward(items)
        return [np.array(output[row, : item.length]) for row, item in enumerate(items)]

    def run(self, items: Sequence[TokenizedText]) -> list[np.ndarray]:  # type: ignore[override]
        output = self.forward(items)
        if self.output_is_pooled:
            return list(output)
        if self.spec.pooling == "cls":
            return [output[row, 0] for row in range(len(items))]
        # Mean over each row's real tokens. Slicing (rather than masking the padded row) gives
        # the same reduction as the unbatched text, so batching cannot change the result.
        return [output[row, : item.length].mean(axis=0) for row, item in enumerate(items)]
