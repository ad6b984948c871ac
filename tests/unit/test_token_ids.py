"""gateway.token_ids: tiktoken ids decode to the exact text, per encoding, with errors that name
the input; no server, no model files."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiktoken

from gateway.errors import InvalidRequest
from gateway.token_ids import MISSING_HINT, TokenDecoder, encoding_for_model, token_rows
from tests.support.tiktoken_cache import seed_tiktoken_cache

TEXTS = [
    "plain ASCII text",
    "Zürich, crème brûlée, façade, naïve",
    "emoji 🧪🚀 and a flag 🇨🇭",
    "中文句子，日本語の文、한국어 문장",  # noqa: RUF001 (CJK punctuation on purpose)
    "tabs\tand\nnewlines  and   spaces",
]


@pytest.fixture(scope="module", autouse=True)
def tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("all-minilm", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
    ],
)
def test_encoding_for_model_follows_tiktoken(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding
    try:
        expected = tiktoken.encoding_name_for_model(model)
    except KeyError:
        expected = "cl100k_base"  # LangChain's fallback for names tiktoken does not know
    assert expected == encoding


@pytest.mark.parametrize(
    ("model", "encoding"), [("all-minilm", "cl100k_base"), ("gpt-4o", "o200k_base")]
)
def test_round_trip_is_exact(model: str, encoding: str) -> None:
    client_side = tiktoken.get_encoding(encoding)
    rows = [client_side.encode_ordinary(text) for text in TEXTS]
    assert TokenDecoder().decode(model, rows) == TEXTS


def test_other_encoding_gives_other_text() -> None:
    """The comparison above can fail: o200k ids read as cl100k are a different text."""
    rows = [tiktoken.get_encoding("o200k_base").encode_ordinary(TEXTS[0])]
    assert max(rows[0]) < 100_256, "ids cl100k_base can read, so the test compares texts"
    assert TokenDecoder().decode("all-minilm", rows) != [TEXTS[0]]


def test_ids_outside_the_vocabulary_name_the_input() -> None:
    decoder = TokenDecoder()
    with pytest.raises(
        InvalidRequest,
        match=r"input\[1\] has token id 100256, outside the "
        r"cl100k_base vocabulary \(0\.\.100255\)",
    ):
        decoder.decode("all-minilm", [[9906], [100256]])
    with pytest.raises(InvalidRequest, match=r"^input has token id -1"):
        decoder.decode("all-minilm", [[-1]])
    assert decoder.decode("gpt-4o", [[199_997]])  # the last o200k id is fine


def test_missing_vocabulary_package_is_a_clear_400(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as refused:
        TokenDecoder(data_dir=tmp_path).decode("all-minilm", [[9906]])
    assert refused.value.message == MISSING_HINT
    assert "openai-tokens" in MISSING_HINT and "check_embedding_ctx_length=False" in MISSING_HINT


def test_token_rows_shapes() -> None:
    assert token_rows([1, 2, 3]) == [[1, 2, 3]]
    assert token_rows([[1, 2], [3]]) == [[1, 2], [3]]
    assert token_rows(["a", "b"]) is None
    assert token_rows([{"text": "a"}]) is None
    for mixed, index in (([[1], "a"], 1), (["a", [1]], 0), ([[1], []], 1), ([[1], [True]], 1)):
        with pytest.raises(InvalidRequest, match=rf"input\[{index}\]"):
            token_rows(mixed)
