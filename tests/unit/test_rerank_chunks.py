"""gateway.rerank_chunks and rerank()'s chunking, on a tokenizer built here and a scorer that
counts a keyword among the tokens it reads (no model files)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

import gateway.rerank as rerank_module
from gateway.encoders.pairs import PreparedPairs
from gateway.errors import InputTooLong, InvalidRequest
from gateway.rerank import RerankScores, rerank
from gateway.rerank_chunks import best_of_chunks, split_documents
from gateway.scoring import ScoreScale

WORDS = ["the", "cat", "sat", "needle", "spider", "##s", "unbeliev", "##ably", "##unbeliev"]
WINDOW = 4  # a document's tokens the scorer reads at once


def tokenizer(max_tokens: int = WINDOW + 2) -> Tokenizer:
    """A BERT-like WordPiece tokenizer that truncates at `max_tokens`, as models' are loaded."""
    vocab = {token: i for i, token in enumerate(["[UNK]", "[CLS]", "[SEP]", *WORDS])}
    built = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    built.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    built.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    built.enable_truncation(max_length=max_tokens)
    return built


def tokens_of(text: str) -> list[str]:
    return tokenizer(10_000).encode(text, add_special_tokens=False).tokens


def test_a_document_that_fits_is_one_chunk_its_text_unchanged() -> None:
    split = split_documents(tokenizer(), ["  the cat sat  ", ""], WINDOW, 10)
    assert split.texts == ["  the cat sat  ", ""]
    assert split.owners.tolist() == [0, 1]
    assert split.capped == split.unread == []


def test_chunks_end_where_words_end_and_hold_the_whole_document() -> None:
    """ "spiders" is two tokens: a window of 4 holds two of them, never one and a half."""
    document = " ".join(["spiders"] * 5)
    split = split_documents(tokenizer(), [document], WINDOW, None)
    assert split.texts == ["spiders spiders", "spiders spiders", "spiders"]
    assert split.owners.tolist() == [0, 0, 0]
    assert all(len(tokens_of(text)) <= WINDOW for text in split.texts)
    assert " ".join(split.texts) == document


def test_a_word_longer_than_half_the_window_is_cut_inside() -> None:
    """A chunk backs off to a word start only within the window's second half."""
    short_word = split_documents(tokenizer(), ["the unbelievably unbelievably"], WINDOW, None)
    assert short_word.texts == ["the unbelievably", "unbelievably"]
    word = "unbelievably" * 3  # six tokens: longer than the window
    long_word = split_documents(tokenizer(), [f"the {word}"], WINDOW, None)
    assert long_word.texts == ["the unbelievablyunbeliev", "ablyunbelievably"]


def test_the_chunk_cap_leaves_the_rest_unread_and_says_so() -> None:
    documents = ["the cat", "the cat sat the cat sat the cat sat needle"]
    split = split_documents(tokenizer(), documents, WINDOW, 2)
    assert split.texts == ["the cat", "the cat sat the", "cat sat the cat"]
    assert split.owners.tolist() == [0, 1, 1]
    assert split.unread == [1] and split.capped == []


def test_the_token_cap_cuts_before_splitting() -> None:
    split = split_documents(tokenizer(), ["the cat sat needle long", "the"], WINDOW, None, 3)
    assert split.texts == ["the cat sat", "the"]
    assert split.capped == [0] and split.unread == []


def test_a_document_is_scored_by_its_best_chunk() -> None:
    owners = np.array([0, 0, 1, 2, 2, 2])
    raw = np.array([0.1, 0.7, -2.0, 3.0, 5.0, 4.0])
    relevance = raw * 2
    best_raw, best_relevance = best_of_chunks(owners, raw, relevance)
    assert best_raw.tolist() == [0.7, -2.0, 5.0]
    assert best_relevance.tolist() == [1.4, -4.0, 10.0]
    with_nan = best_of_chunks(owners, np.array([1.0, np.nan, 0, 0, 0, 0]), relevance)[0]
    assert np.isnan(with_nan[0])  # a model fault in any chunk is not hidden


class KeywordScorer:
    """Scores a document by how many "needle" tokens it reads; reads WINDOW tokens of each."""

    def __init__(self) -> None:
        self.document_tokenizer = tokenizer()
        self.read: list[str] = []

    def document_window(self, query: str) -> int:
        return WINDOW

    def prepare_pairs(self, query: str, documents: Sequence[str]) -> PreparedPairs[list[str]]:
        encodings = self.document_tokenizer.encode_batch(list(documents))
        self.read = list(documents)
        return PreparedPairs(
            items=[[t for t in e.tokens if t not in ("[CLS]", "[SEP]")] for e in encodings],
            query_truncated=False,
            documents_truncated=[i for i, e in enumerate(encodings) if e.overflowing],
            tokens=sum(len(e.ids) for e in encodings),
            limit=f"{WINDOW} tokens",
        )

    def run(self, items: Sequence[list[str]]) -> list[np.ndarray]:
        return [np.array([float(item.count("needle"))]) for item in items]

    def score_pairs(
        self, raw: Sequence[np.ndarray], scale: ScoreScale
    ) -> tuple[np.ndarray, np.ndarray]:
        counts = np.concatenate(list(raw))
        return counts, counts / 10


def ranked(documents: list[str], **options: object) -> tuple[RerankScores, KeywordScorer]:
    scorer = KeywordScorer()

    async def submit(items: Sequence[list[str]]) -> list[np.ndarray]:
        return scorer.run(items)

    scores = asyncio.run(rerank(scorer, submit, "q", documents, **options))  # type: ignore[arg-type]
    return scores, scorer


# The keyword is the 7th token of the second document: past one window, inside two.
DOCUMENTS = ["the cat", "the cat sat the cat sat needle"]


def test_one_chunk_is_the_models_own_cut() -> None:
    scores, scorer = ranked(DOCUMENTS, chunks=1)
    assert scores.raw.tolist() == [0.0, 0.0]
    assert scores.truncated == [1]
    assert scorer.read == DOCUMENTS  # the model cut it, as before chunking


@pytest.mark.parametrize("chunks", [2, 10, None])
def test_chunks_read_the_keyword_past_the_first_window(chunks: int | None) -> None:
    scores, scorer = ranked(DOCUMENTS, chunks=chunks)
    assert scores.raw.tolist() == [0.0, 1.0]
    assert scores.relevance.tolist() == [0.0, 0.1]
    assert scores.truncated == []
    assert scores.top() == [1, 0]
    assert scorer.read == ["the cat", "the cat sat the", "cat sat needle"]


def test_a_token_cap_is_reported_as_a_cut() -> None:
    scores, _ = ranked(DOCUMENTS, chunks=None, document_tokens=6)
    assert scores.raw.tolist() == [0.0, 0.0]
    assert scores.truncated == [1]


def test_without_truncate_a_document_longer_than_its_chunks_is_refused() -> None:
    ranked(DOCUMENTS, chunks=2, truncate=False)  # fits in two
    with pytest.raises(InputTooLong, match=r"documents\[1\] is longer than 4 tokens"):
        ranked(DOCUMENTS, chunks=1, truncate=False)  # as before chunking
    many = ["the cat sat the cat sat the cat sat needle"]
    with pytest.raises(InputTooLong, match="2 chunks of 4 tokens"):
        ranked(many, chunks=2, truncate=False)


def test_too_many_chunks_in_one_request_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rerank_module, "MAX_CHUNKS_PER_REQUEST", 3)
    ranked(["the", "the", "the", "the"], chunks=None)  # one chunk each: never refused
    with pytest.raises(InvalidRequest, match="4 chunks"):
        ranked(["the", "the cat sat the cat sat the cat sat"], chunks=None)
