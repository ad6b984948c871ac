"""Long documents on the Cohere rerank routes: split into chunks the model reads whole, each
document scored by its best chunk.

Cohere's rerank splits a document longer than the model's window into consecutive windows of
the document's tokens (the window being the context less the query and the special tokens),
scores each with the query, and answers the best score (its rerank best-practices guide);
v1's `max_chunks_per_doc` (default 10) caps how many windows are read, v2 reads up to
`max_tokens_per_doc` tokens (default 4096). Without this a long document was read up to the
model's length only, so a passage past the first window could not count.

Chunks end where a word ends (the token after them follows whitespace), so each chunk's text
tokenizes to the tokens it was cut from; a single word longer than the window is cut inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Encoding, Tokenizer

# Chunks one request may score in all, unless it has more documents than that (each is one
# chunk at least): Cohere's own bound on len(documents) * max_chunks_per_doc.
MAX_CHUNKS_PER_REQUEST = 10_000


@dataclass(frozen=True)
class Chunks:
    texts: list[str]  # every document's chunks, document after document
    owners: np.ndarray  # [len(texts)]: the document each chunk is from (non-decreasing)
    capped: list[int]  # documents cut to the token cap (max_tokens_per_doc) first
    unread: list[int]  # documents with text past their last chunk (max_chunks_per_doc reached)


def _offsets(encoding: Encoding) -> list[tuple[int, int]]:
    """Every token's character span: a tokenizer that truncates hands the rest of a long text
    back as overflowing windows, in order."""
    return [span for part in (encoding, *encoding.overflowing) for span in part.offsets]


def _spans(offsets: list[tuple[int, int]], window: int, most: int | None) -> list[tuple[int, int]]:
    """Token index ranges of the chunks: at most `window` tokens each, ending before a token that
    follows whitespace where one is in the window's second half; at most `most` of them (None:
    all)."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(offsets) and (most is None or len(spans) < most):
        stop = min(start + window, len(offsets))
        if stop < len(offsets):
            # Back to the last word start (a token after a gap) in the window's second half.
            stop = next(
                (
                    i
                    for i in range(stop, start + window // 2, -1)
                    if offsets[i][0] > offsets[i - 1][1]
                ),
                stop,
            )
        spans.append((start, stop))
        start = stop
    return spans


def split_documents(
    tokenizer: Tokenizer,
    documents: Sequence[str],
    window: int,
    most: int | None,
    token_cap: int | None = None,
) -> Chunks:
    """Each document cut after its first `token_cap` tokens (None: not cut), then as one chunk
    if it fits `window` tokens (its text unchanged), else as consecutive chunks of at most
    `window` tokens, at most `most` of them (None: as many as it fills)."""
    window = max(window, 1)
    texts: list[str] = []
    owners: list[int] = []
    capped: list[int] = []
    unread: list[int] = []
    encodings = tokenizer.encode_batch(list(documents), add_special_tokens=False)
    for index, (text, encoding) in enumerate(zip(documents, encodings, strict=True)):
        offsets = _offsets(encoding)
        if token_cap is not None and len(offsets) > token_cap:
            offsets = offsets[:token_cap]
            text = text[: offsets[-1][1]]
            capped.append(index)
        if len(offsets) <= window:
            texts.append(text)
            owners.append(index)
            continue
        spans = _spans(offsets, window, most)
        if spans[-1][1] < len(offsets):
            unread.append(index)
        for start, stop in spans:
            texts.append(text[offsets[start][0] : offsets[stop - 1][1]])
            owners.append(index)
    return Chunks(texts, np.asarray(owners, dtype=np.int64), capped, unread)


def best_of_chunks(
    owners: np.ndarray, raw: np.ndarray, relevance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per document, the scores of its best chunk (by the raw score; relevance follows it in
    order for every kind of model). A NaN wins, so a model fault is never hidden."""
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    stops = np.r_[starts[1:], len(owners)]
    best = np.array(
        [
            start + int(np.argmax(raw[start:stop]))
            for start, stop in zip(starts, stops, strict=True)
        ],
        dtype=np.int64,
    )
    return raw[best], relevance[best]
