"""LateInteractionEncoder against PyLate, on tiny random ColBERTs that PyLate built and saved.

Two architectures (answerai-colbert-small's BERT settings; GTE-ModernColBERT's ModernBERT
settings with "[Q] "/"[D] " added tokens and no token types) and three ways to serve each:
projection and L2 inside the graph, or hidden states plus the Dense weight as safetensors or
npy. Every token id, token count, token vector and MaxSim score is compared with PyLate's own
`tokenize` / `encode(is_query=...)` / `colbert_scores` (tools/pylate_reference.py).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from gateway.encoders import EncodeOptions, build_encoder
from gateway.encoders.late import LateInteractionEncoder, LateTokens
from gateway.encoders.projection import load_projection
from gateway.errors import InvalidRequest, ModelLoadError
from gateway.registry import LateModelSpec, RegistryError, parse_entry
from gateway.runtime import Runtime
from gateway.scoring import maxsim
from tools.colbert_models import DOCUMENTS, PAIRS, QUERIES, ColbertModel
from tools.late_api import LAYOUTS, assert_matches_pylate, colbert_entry

SCORE_TOLERANCE = 1e-4
LONG_QUERY = 2
LONG_DOCUMENTS = (5, 9)


@pytest.fixture(scope="module", params=["bert", "modernbert"])
def colbert(request: pytest.FixtureRequest, colberts: dict[str, ColbertModel]) -> ColbertModel:
    return colberts[request.param]


def load(model: ColbertModel, layout: str, **overrides: object) -> LateInteractionEncoder:
    spec = parse_entry(model.name, colbert_entry(model, layout, **overrides))
    assert isinstance(spec, LateModelSpec)
    paths = {role: model.folder / ref.path for role, ref in spec.files.items()}
    encoder = build_encoder(spec, paths, Runtime(device="cpu", threads=1))
    assert isinstance(encoder, LateInteractionEncoder)
    return encoder


def assert_parity(
    ours: list[np.ndarray], reference: list[np.ndarray], label: str
) -> tuple[float, float]:
    """(min per-token cosine, max abs difference), after asserting both and the counts, and
    that every row is a float32 unit vector."""
    worst, diff = assert_matches_pylate(ours, reference, label)
    for vectors in ours:
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    return worst, diff


# -- tokenization ------------------------------------------------------------------------------


def test_token_ids_and_lookups_match_pylate(colbert: ColbertModel) -> None:
    encoder = load(colbert, "graph")
    facts = colbert.facts
    assert encoder.query_prefix_id == facts["query_prefix_id"]
    assert encoder.document_prefix_id == facts["document_prefix_id"]
    assert encoder.mask_id == facts["mask_token_id"]
    assert sorted(encoder.skiplist_ids.tolist()) == sorted(set(facts["skiplist_ids"]))
    for task, texts, rows in (
        ("query", QUERIES, facts["queries"]),
        ("document", DOCUMENTS, facts["documents"]),
    ):
        items = encoder.tokenize(texts, task=task)
        for text, item, row in zip(texts, items, rows, strict=True):
            assert item.ids.tolist() == row["input_ids"], (task, text)
            assert item.attention.tolist() == row["attention_mask"], (task, text)


def test_query_layout_expansion_and_truncation(colbert: ColbertModel) -> None:
    encoder = load(colbert, "graph")
    items = encoder.tokenize(QUERIES, task="query")
    s = colbert.settings
    for index, item in enumerate(items):
        assert item.length == s.query_length and item.vectors == s.query_length
        assert item.ids[1] == encoder.query_prefix_id
        assert item.truncated == (index == LONG_QUERY)
        # [MASK] expansion after the text, not attended (answerai / GTE-ModernColBERT setting).
        expansion = item.ids[item.text_tokens :]
        assert (expansion == encoder.mask_id).all()
        assert (
            item.attention[: item.text_tokens].all()
            and not item.attention[item.text_tokens :].any()
        )
    assert items[LONG_QUERY].text_tokens == s.query_length


def test_document_layout_skiplist_and_truncation(colbert: ColbertModel) -> None:
    encoder = load(colbert, "graph")
    items = encoder.tokenize(DOCUMENTS, task="document")
    for index, item in enumerate(items):
        assert item.ids[1] == encoder.document_prefix_id
        assert item.attention.all()
        assert item.truncated == (index in LONG_DOCUMENTS)
        assert item.length <= colbert.settings.document_length
        assert item.vectors == len(colbert.document_vectors(index))
    for index in LONG_DOCUMENTS:
        assert items[index].length == colbert.settings.document_length
    # The punctuation-heavy document loses rows, but never [CLS], marker, [SEP]. WordPiece
    # splits punctuation into single-character tokens, so BERT loses most of them; byte-level
    # BPE makes " ??" one token ("Ġ??") that is not on the skiplist, and PyLate keeps it.
    heavy = items[3]
    assert 3 <= heavy.vectors < heavy.length
    if colbert.facts["has_token_type_ids"]:  # the BERT model
        assert heavy.vectors < heavy.length / 2
    else:
        assert heavy.vectors > heavy.length / 2
    with pytest.raises(InvalidRequest):
        encoder.tokenize(["x"], task="clustering")


# -- vectors and scores ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_vectors_match_pylate(colbert: ColbertModel, layout: str) -> None:
    encoder = load(colbert, layout)
    queries = run_finished(encoder, encoder.tokenize(QUERIES, task="query"))
    documents = run_finished(encoder, encoder.tokenize(DOCUMENTS, task="document"))
    q_ref = [colbert.query_vectors(i) for i in range(len(QUERIES))]
    d_ref = [colbert.document_vectors(i) for i in range(len(DOCUMENTS))]
    worst_q = assert_parity(queries, q_ref, f"{colbert.name}/{layout} queries")
    worst_d = assert_parity(documents, d_ref, f"{colbert.name}/{layout} documents")
    print(
        f"{colbert.name} {layout}: queries min cosine {worst_q[0]:.8f} max diff {worst_q[1]:.1e}; "
        f"documents min cosine {worst_d[0]:.8f} max diff {worst_d[1]:.1e}"
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_maxsim_matches_pylate(colbert: ColbertModel, layout: str) -> None:
    encoder = load(colbert, layout)
    queries = run_finished(encoder, encoder.tokenize(QUERIES, task="query"))
    documents = run_finished(encoder, encoder.tokenize(DOCUMENTS, task="document"))
    ours = np.array([maxsim(queries[q], [documents[d]])[0] for q, d in PAIRS])
    diff = float(np.abs(ours - colbert.scores).max())
    assert diff <= SCORE_TOLERANCE, f"max abs score diff {diff}"
    # Not a constant: the pairs must actually be told apart.
    assert np.ptp(colbert.scores) > 100 * SCORE_TOLERANCE
    # One query against every document at once equals the pairwise scores.
    for q in range(len(QUERIES)):
        together = maxsim(queries[q], documents)
        for d in range(len(DOCUMENTS)):
            assert together[d] == pytest.approx(maxsim(queries[q], [documents[d]])[0], abs=1e-5)
    print(f"{colbert.name} {layout}: max abs MaxSim diff {diff:.2e} over {len(PAIRS)} pairs")


@pytest.mark.parametrize(
    ("key", "overrides"),
    [
        ("q_attend", {"attend_to_expansion_tokens": True}),
        ("q_noexp", {"do_query_expansion": False}),
    ],
)
def test_other_query_settings_match_pylate(
    colbert: ColbertModel, key: str, overrides: dict[str, bool]
) -> None:
    """attend_to_expansion_tokens and do_query_expansion as PyLate applies them."""
    encoder = load(colbert, "graph", **overrides)
    items = encoder.tokenize(QUERIES, task="query")
    reference = [colbert.vectors[f"{key}{i}"] for i in range(len(QUERIES))]
    assert_parity(run_finished(encoder, items), reference, f"{colbert.name} {key}")
    if key == "q_attend":
        assert all(item.attention.all() for item in items)
        assert all(item.length == colbert.settings.query_length for item in items)
    else:
        # No [MASK] rows: a query yields one vector per token of its own.
        assert all(item.length == item.text_tokens == item.vectors for item in items)
        assert max(item.length for item in items) == colbert.settings.query_length


def test_batching_does_not_change_vectors(colbert: ColbertModel) -> None:
    """Alone, in a batch of documents, or mixed with queries: the same vectors (to 1e-5)."""
    encoder = load(colbert, "hidden+npy")
    queries = encoder.tokenize(QUERIES, task="query")
    documents = encoder.tokenize(DOCUMENTS, task="document")
    items: list[LateTokens] = [*queries, *documents]
    alone = [run_finished(encoder, [item])[0] for item in items]
    forward = run_finished(encoder, items)
    backward = run_finished(encoder, items[::-1])[::-1]
    for single, one, other in zip(alone, forward, backward, strict=True):
        assert single.shape == one.shape == other.shape
        np.testing.assert_allclose(one, single, atol=1e-5)
        np.testing.assert_allclose(other, single, atol=1e-5)


# -- configuration errors ----------------------------------------------------------------------


def test_load_errors_name_the_problem(colbert: ColbertModel) -> None:
    with pytest.raises(ModelLoadError, match="query_prefix"):
        load(colbert, "graph", query_prefix="[NOT-A-TOKEN]")
    with pytest.raises(ModelLoadError, match="dim is 64"):
        load(colbert, "hidden+npy", dim=64)
    with pytest.raises(ModelLoadError, match="expected 64"):
        load(colbert, "graph", dim=64)
    # Hidden states served without their projection are the wrong width for dim.
    with pytest.raises(ModelLoadError, match=f"expected {colbert.settings.dim}"):
        load(colbert, "hidden+npy", files={"model": "hidden/model.onnx",
                                           "tokenizer": "pylate/tokenizer.json"})  # fmt: skip


def test_registry_validates_late_entries(colbert: ColbertModel) -> None:
    with pytest.raises(RegistryError, match="attend_to_expansion_tokens"):
        parse_entry("x", colbert_entry(colbert, "graph", do_query_expansion=False,
                                       attend_to_expansion_tokens=True))  # fmt: skip
    with pytest.raises(RegistryError, match=r"files\.weights"):
        entry = colbert_entry(colbert, "graph")
        parse_entry("x", {**entry, "files": {**entry["files"], "weights": "w.npy"}})
    with pytest.raises(RegistryError, match="skiplist"):
        parse_entry("x", colbert_entry(colbert, "graph", skiplist=["", "."]))


def test_projection_file_formats(colbert: ColbertModel, tmp_path: Path) -> None:
    """bf16 safetensors and npz with a bias load as written; anything else is refused."""
    weight = np.load(colbert.folder / "projection.npy")
    bf16 = (weight.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps(
        {
            "linear.weight": {
                "dtype": "BF16",
                "shape": list(weight.shape),
                "data_offsets": [0, bf16.nbytes],
            }
        }
    ).encode()
    path = tmp_path / "dense.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bf16.tobytes())
    loaded = load_projection(path)
    widened = (bf16.astype(np.uint32) << 16).view(np.float32)
    assert np.array_equal(loaded.weight, widened) and loaded.bias is None
    assert np.abs(loaded.weight - weight).max() < 0.01 * np.abs(weight).max()

    bias = np.arange(weight.shape[0], dtype=np.float32)
    np.savez(tmp_path / "dense.npz", weight=weight, bias=bias)
    with_bias = load_projection(tmp_path / "dense.npz")
    x = np.ones((2, weight.shape[1]), dtype=np.float32)
    np.testing.assert_allclose(with_bias(x), x @ weight.T + bias, rtol=1e-6)

    (tmp_path / "dense.txt").write_text("1 2 3")
    with pytest.raises(ModelLoadError, match="npy"):
        load_projection(tmp_path / "dense.txt")
    np.savez(tmp_path / "bad.npz", weight=weight, bias=bias[:-1])
    with pytest.raises(ModelLoadError, match="bias"):
        load_projection(tmp_path / "bad.npz")


def run_finished(encoder: LateInteractionEncoder, items: list[LateTokens]) -> list[np.ndarray]:
    """run, then finish (projection, normalization): the matrices a client gets."""
    return encoder.finish(encoder.run(items), EncodeOptions())
