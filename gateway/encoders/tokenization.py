"""Loading a tokenizer.json so that it does what the registry says, not what was baked in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Encoding, Tokenizer
from tokenizers.processors import TemplateProcessing

from gateway.errors import ModelLoadError

_PAD_TOKENS = ("[PAD]", "<pad>", "<|padding|>")


def load_tokenizer(path: Path, max_tokens: int, end_token: str | None = None) -> Tokenizer:
    """A tokenizer that never pads and truncates at `max_tokens` (special tokens included);
    with `end_token`, one that appends that token to every input (see `append_end_token`).

    Published tokenizer.json files often carry Fixed(128) padding and a 128-token truncation
    (all-MiniLM's does); left in place they would silently pad and cut every input.
    """
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for bad files
        raise ModelLoadError(f"cannot read tokenizer {path.name}: {exc}") from None
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    if end_token is not None:
        append_end_token(tokenizer, end_token, path.name)
    return tokenizer


def append_end_token(tokenizer: Tokenizer, token: str, source: str) -> None:
    """Make `tokenizer` end every input with `token`, whatever its post-processor did.

    Qwen3-Embedding pools the state of `<|endoftext|>`: Qwen added a TemplateProcessing that
    appends it to the model's tokenizer.json after release, and copies made before that do not
    append it. As a post-processor the token counts within the truncation length, so a cut
    input still ends with it, as in transformers.
    """
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ModelLoadError(f"end_token {token!r} is not in tokenizer {source}")
    tokenizer.post_processor = TemplateProcessing(
        single=f"$A:0 {token}:0",
        pair=f"$A:0 {token}:0 $B:1 {token}:1",
        special_tokens=[(token, token_id)],
    )


def pad_id(tokenizer: Tokenizer) -> int:
    for token in _PAD_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token_id
    return 0


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> list[Encoding]:
    """Encodings of `texts`: one text on the calling thread, several through the tokenizer's
    thread pool.

    encode_batch hands even a single text to its pool; with inference holding both cores that
    hop made one short text cost 130 us instead of 60 on the event loop.
    """
    if len(texts) == 1:
        return [tokenizer.encode(texts[0])]
    return tokenizer.encode_batch(list(texts))
