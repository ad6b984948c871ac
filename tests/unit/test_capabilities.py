"""Capabilities: the one kind switch, what each kind can do, and how a lack of it reads.

Plain data only: specs are parsed from registry entries, encoders are never loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, get_args

import pytest

from gateway.api.ollama_wire import capability_names
from gateway.encoders import (
    Capability,
    CrossEncoder,
    LateInteractionEncoder,
    SparseEncoder,
    TextEncoder,
    VisionEncoder,
    capabilities_of,
    encoder_class,
    missing_capability,
)
from gateway.encoders.kinds import ENCODERS
from gateway.encoders.views import can_rank
from gateway.registry import Registry, RegistryError, parse_entry
from gateway.specs import AnySpec

REPO = Path(__file__).resolve().parents[2]
FILES = {"model": "m.onnx", "tokenizer": "t.json"}
ENTRIES: dict[str, dict[str, Any]] = {
    "text": {"kind": "text", "source": "/x", "files": FILES, "dim": 8},
    "image": {"kind": "image", "source": "/x", "files": {"model": "m.onnx"}, "dim": 8},
    "late": {"kind": "late", "source": "/x", "files": FILES, "dim": 8},
    "cross": {"kind": "cross-encoder", "source": "/x", "files": FILES},
    "sparse": {"kind": "sparse", "source": "/x", "files": FILES},
}


def spec(kind: str, name: str | None = None, **fields: object) -> AnySpec:
    return parse_entry(name or kind, {**ENTRIES[kind], **fields})


def test_every_spec_type_has_exactly_one_encoder() -> None:
    assert set(ENCODERS) == set(get_args(AnySpec))
    assert encoder_class(spec("text")) is TextEncoder
    assert encoder_class(spec("image")) is VisionEncoder
    assert encoder_class(spec("late")) is LateInteractionEncoder
    assert encoder_class(spec("cross")) is CrossEncoder
    assert encoder_class(spec("sparse")) is SparseEncoder


@pytest.mark.parametrize(
    ("kind", "capabilities", "ollama", "ranks"),
    [
        ("text", {Capability.EMBED_TEXT}, ["embedding"], True),
        ("image", {Capability.EMBED_IMAGE}, ["embedding", "vision"], False),
        ("late", {Capability.MULTIVECTOR, Capability.SCORE_PAIRS}, ["embedding", "rerank"], True),
        ("cross", {Capability.SCORE_PAIRS}, ["rerank"], True),
        # Not Ollama's "embedding": /api/embed refuses it (its vectors are sparse). It ranks by
        # the dot product, as an embedder by cosine (not natively: not "rerank").
        ("sparse", {Capability.EMBED_SPARSE}, [], True),
    ],
)
def test_capabilities_per_kind(
    kind: str, capabilities: set[Capability], ollama: list[str], ranks: bool
) -> None:
    declared = capabilities_of(spec(kind))
    assert declared == capabilities
    # Ollama's /api/show and /api/tags list, as before the capabilities existed.
    assert capability_names(declared) == ollama
    assert can_rank(declared) is ranks


def test_missing_capability_names_the_model_and_what_it_can_do() -> None:
    error = missing_capability(
        "ms-marco", frozenset({Capability.SCORE_PAIRS}), "embed", "use POST /v1/rerank"
    )
    assert error.status_code == 400
    assert error.param == "model"
    assert error.message == "model 'ms-marco' cannot embed: it can score_pairs; use POST /v1/rerank"


def test_kind_neutral_spec_facts() -> None:
    text = spec("text", dimensions=[4], prefixes={"query": "q: "}, max_tokens=64)
    assert (text.context_length, text.vector_width, text.output_widths) == (64, 8, [8, 4])
    late = spec("late", document_length=100)
    assert (late.context_length, late.vector_width, late.output_widths) == (100, 8, [])
    image = spec("image", text_model="t", text_task="query")
    assert (image.context_length, image.paired_text_model, image.paired_text_task) == (
        None,
        "t",
        "query",
    )
    cross = spec("cross")
    assert (cross.vector_width, cross.output_widths, cross.paired_text_model) == (None, [], None)
    sparse = spec("sparse", max_tokens=256, vocab_size=30522)
    assert (sparse.context_length, sparse.vector_width, sparse.output_widths) == (256, 30522, [])
    assert sparse.public_facts() == {"pooling": "max", "activation": "relu"}


def test_registry_defaults_follow_capabilities() -> None:
    registry = Registry({"t": spec("text", "t"), "c": spec("cross", "c"), "i": spec("image", "i")})
    assert registry.default_image_model == "i"
    assert registry.default_rerank_model == "c"
    assert Registry({"t": spec("text", "t")}).default_rerank_model == "t"
    assert registry.default_sparse_model is None
    sparse = {"t": spec("text", "t"), "s": spec("sparse", "s"), "s2": spec("sparse", "s2")}
    assert Registry(sparse).default_sparse_model == "s"
    assert Registry(sparse, default_sparse_model="s2").default_sparse_model == "s2"
    with pytest.raises(RegistryError, match="'t' is not a sparse model"):
        Registry(sparse, default_sparse_model="t")


def test_an_image_model_must_share_a_text_embedders_space() -> None:
    with pytest.raises(RegistryError, match="'c' is not a text model"):
        Registry({"c": spec("cross", "c"), "i": spec("image", "i", text_model="c")})
    with pytest.raises(RegistryError, match="has 16 dimensions, this model 8"):
        Registry({"t": spec("text", "t", dim=16), "i": spec("image", "i", text_model="t")})


def _isinstance_of_spec_types(path: Path) -> list[str]:
    """`isinstance(x, <...>Spec)` calls in a module: model-kind switches."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
            kinds = ast.unparse(node.args[1])
            if "Spec" in kinds or "Encoder" in kinds:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_kind_switch_outside_the_encoders_kind_table() -> None:
    modules = sorted((REPO / "gateway").rglob("*.py"))
    switches = [hit for module in modules for hit in _isinstance_of_spec_types(module)]
    assert switches == []
