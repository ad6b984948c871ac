"""Decoder embedders (Qwen3-Embedding): last-token pooling, the end token the tokenizer appends,
and the inputs a decoder graph takes beyond token ids (position ids, an empty KV cache).

No model files: the session is a causal stand-in (a token's state sums the ids up to it), and
the tokenizer is built here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from gateway.backends.base import GraphInfo, TensorInfo
from gateway.backends.probe import probe_feed
from gateway.encoders import TextEncoder
from gateway.encoders.base import EncodeOptions
from gateway.encoders.decoder import DecoderInputs, positions_from_mask
from gateway.encoders.text import TokenizedText, map_graph_inputs
from gateway.encoders.tokenization import append_end_token
from gateway.errors import ModelLoadError
from gateway.registry import parse_entry

HIDDEN = 4
FILES = {"model": "m.onnx", "tokenizer": "t.json"}
Shape = tuple[int | str | None, ...]
IDS: Shape = ("batch", "sequence")
PAST: Shape = ("batch", 2, "past", 8)


def past(layer: int, kind: str, shape: Shape = PAST, type_: str = "tensor(float)") -> TensorInfo:
    return TensorInfo(f"past_key_values.{layer}.{kind}", shape, type_)


def decoder_graph(*cache: TensorInfo) -> GraphInfo:
    inputs = (
        TensorInfo("input_ids", IDS, "tensor(int64)"),
        TensorInfo("attention_mask", IDS, "tensor(int64)"),
        TensorInfo("position_ids", IDS, "tensor(int64)"),
        *cache,
    )
    output = TensorInfo("last_hidden_state", ("batch", "sequence", HIDDEN), "tensor(float)")
    return GraphInfo(inputs, (output,), dynamic_quantization=False)


class CausalStates:
    """A session whose token states depend only on the ids up to them (causal attention) and
    on their positions, which it checks it was fed; padding rows hold garbage."""

    def __init__(self) -> None:
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.feeds.append(feed)
        ids, mask = feed["input_ids"], feed["attention_mask"]
        running = np.cumsum(ids * mask, axis=1).astype(np.float32)
        states = np.stack([running, feed["position_ids"], ids, running**0.5], axis=-1)
        states[mask == 0] = 1e6  # what padding holds must not reach a vector
        return [states.astype(np.float32)]


def encoder(**entry: object) -> TextEncoder:
    """A TextEncoder around the stand-in session (its __init__ would load files)."""
    subject = object.__new__(TextEncoder)
    raw = {"kind": "text", "source": "/x", "files": FILES, "dim": HIDDEN, "pooling": "last"}
    subject.spec = parse_entry("t", {**raw, **entry})  # type: ignore[assignment]
    subject.session = CausalStates()
    subject.pad_id = 0
    subject.input_names = {"input_ids": "input_ids", "attention_mask": "attention_mask"}
    subject.decoder = DecoderInputs("position_ids", (past(0, "key"), past(0, "value")))
    subject.output_name, subject.output_is_pooled = "last_hidden_state", False
    return subject


def texts(*rows: Sequence[int]) -> list[TokenizedText]:
    return [
        TokenizedText(np.asarray(row, dtype=np.int64), np.zeros(len(row), np.int64), False)
        for row in rows
    ]


def test_last_pooling_takes_each_text_own_last_token() -> None:
    subject = encoder()
    items = texts([5, 6, 7], [9], [1, 2, 3, 4, 5, 6])
    pooled = subject.pool(subject.run(items))
    # running sum of the ids, position of the last token, the last id, sqrt of the sum
    np.testing.assert_array_equal(pooled[0], [18, 2, 7, np.float32(18) ** 0.5])
    np.testing.assert_array_equal(pooled[1], [9, 0, 9, 3])
    np.testing.assert_array_equal(pooled[2], [21, 5, 6, np.float32(21) ** 0.5])


def test_a_text_pooled_at_its_last_token_does_not_depend_on_its_batch() -> None:
    subject = encoder()
    short, long = texts([3, 1, 4], [1, 5, 9, 2, 6, 5, 3, 5])
    alone = subject.finish(subject.run([short]), EncodeOptions())
    batched = subject.finish(subject.run([long, short, long]), EncodeOptions())
    np.testing.assert_array_equal(alone[0], batched[1])


def test_the_feed_carries_positions_from_the_mask_and_an_empty_cache() -> None:
    subject = encoder()
    subject.run(texts([3, 1, 4], [1, 5, 9, 2, 6]))
    (feed,) = subject.session.feeds  # type: ignore[attr-defined]
    np.testing.assert_array_equal(feed["position_ids"], [[0, 1, 2, 2, 2], [0, 1, 2, 3, 4]])
    for kind in ("key", "value"):
        cache = feed[f"past_key_values.0.{kind}"]
        assert cache.shape == (2, 2, 0, 8) and cache.dtype == np.float32


def test_positions_count_real_tokens_only() -> None:
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    positions = positions_from_mask(mask)
    assert positions.dtype == np.int64
    np.testing.assert_array_equal(positions, [[0, 1, 2, 2, 2], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]])


def test_cache_inputs_are_understood_and_sized_from_the_graph() -> None:
    half = past(1, "value", type_="tensor(float16)")
    graph = decoder_graph(past(0, "key"), past(0, "value"), past(1, "key"), half)
    cache = [t.name for t in graph.inputs if t.name.startswith("past_")]
    roles = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
    names = map_graph_inputs(graph, {}, roles, "m", fed_elsewhere=cache)
    assert names == {r: r for r in ("input_ids", "attention_mask", "position_ids")}
    decoder = DecoderInputs.of(graph, names.pop("position_ids"), "m")
    feed: dict[str, np.ndarray] = {}
    decoder.add_to(feed, np.ones((3, 7), dtype=np.int64))
    assert feed["past_key_values.1.value"].dtype == np.float16
    assert {a.shape for n, a in feed.items() if n != "position_ids"} == {(3, 2, 0, 8)}
    with pytest.raises(ModelLoadError, match="not understood"):
        map_graph_inputs(graph, {}, roles, "m")  # the cache must be named as fed elsewhere


def test_a_cache_of_open_head_sizes_is_refused_at_load() -> None:
    graph = decoder_graph(past(0, "key", ("batch", "heads", "past", 8)))
    with pytest.raises(ModelLoadError, match=r"past_key_values\.0\.key"):
        DecoderInputs.of(graph, "position_ids", "m")


def test_a_cache_of_a_type_no_empty_cache_is_made_in_is_refused_at_load() -> None:
    graph = decoder_graph(past(0, "key"), past(0, "value", type_="tensor(bfloat16)"))
    with pytest.raises(ModelLoadError, match=r"past_key_values\.0\.value.*neither float32"):
        DecoderInputs.of(graph, "position_ids", "m")


def test_an_encoder_graph_has_no_decoder_inputs() -> None:
    feed = {"input_ids": np.ones((1, 3), np.int64)}
    DecoderInputs().add_to(feed, np.ones((1, 3), np.int64))
    assert list(feed) == ["input_ids"]


def test_the_load_probe_feeds_an_empty_cache() -> None:
    feed = probe_feed(decoder_graph(past(0, "key"), past(0, "value")).inputs)
    assert feed["input_ids"].shape == feed["position_ids"].shape == (1, 8)
    assert feed["past_key_values.0.key"].shape == (1, 2, 0, 8)


def word_tokenizer() -> Tokenizer:
    vocab = {"<|endoftext|>": 0, "[UNK]": 1, "a": 2, "b": 3, "c": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def test_the_end_token_is_appended_and_survives_truncation() -> None:
    tokenizer = word_tokenizer()
    assert tokenizer.encode("a b").ids == [2, 3]  # this tokenizer.json appends nothing
    append_end_token(tokenizer, "<|endoftext|>", "t.json")
    assert tokenizer.encode("a b").ids == [2, 3, 0]
    tokenizer.enable_truncation(max_length=3)
    cut = tokenizer.encode("a b c a")
    assert cut.ids == [2, 3, 0] and cut.overflowing
    assert tokenizer.num_special_tokens_to_add(False) == 1


def test_an_end_token_missing_from_the_vocabulary_is_a_load_error() -> None:
    with pytest.raises(ModelLoadError, match="<eos>"):
        append_end_token(word_tokenizer(), "<eos>", "t.json")


def test_registry_fields() -> None:
    spec = parse_entry(
        "q", {"kind": "text", "source": "/x", "files": FILES, "dim": 8, "pooling": "last"}
    )
    assert spec.pooling == "last" and spec.end_token is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="end_token"):
        parse_entry(
            "q", {"kind": "text", "source": "/x", "files": FILES, "dim": 8, "end_token": ""}
        )
