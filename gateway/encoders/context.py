"""Context lengths other than a model's `max_tokens`: Ollama's `options.num_ctx`, and the longer
inputs that `truncate: false` accepts (up to the model's `max_positions`).

A tokenizers.Tokenizer carries its truncation length as mutable state, and tokenizing runs in
worker threads, so the shared tokenizer is never reconfigured: each other length gets its own
copy, made once and kept (a few per model at most; least recently used dropped past that).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from tokenizers import Tokenizer

# Copies kept per model: num_ctx values in use are few (one per client configuration).
MAX_COPIES = 8
# [CLS] + one token + [SEP]: below this a cut would leave no text (and tokenizers ignores 1).
MIN_CONTEXT = 3


class TokenizerLengths:
    """The model's tokenizer at other truncation lengths; None means no truncation (counting)."""

    def __init__(self, base: Tokenizer, max_copies: int = MAX_COPIES) -> None:
        self._serialized = base.to_str()
        self._copies: OrderedDict[int | None, Tokenizer] = OrderedDict()
        self._max_copies = max_copies
        self._lock = threading.Lock()

    def at(self, limit: int | None) -> Tokenizer:
        if limit is not None and limit < MIN_CONTEXT:
            raise ValueError(f"a context of {limit} tokens is below {MIN_CONTEXT}")
        with self._lock:
            tokenizer = self._copies.get(limit)
            if tokenizer is None:
                tokenizer = Tokenizer.from_str(self._serialized)
                tokenizer.no_padding()
                if limit is None:
                    tokenizer.no_truncation()
                else:
                    tokenizer.enable_truncation(max_length=limit)
                self._copies[limit] = tokenizer
                while len(self._copies) > self._max_copies:
                    self._copies.popitem(last=False)
            else:
                self._copies.move_to_end(limit)
            return tokenizer

    def count(self, text: str) -> int:
        """Tokens `text` has uncut, special tokens included (for errors that say how long)."""
        return len(self.at(None).encode(text).ids)
