"""Every model kind on a fast-path runtime against the exact mode (ONNX Runtime fp32).

For each kind: parity (cosine per vector, per token for ColBERT, absolute score difference for
cross-encoders) and batch invariance (each input alone vs in a batch with mixed partners, the
batches drawn as the gateway's batcher draws them: from one shape bucket when the backend is
bucketed). Shared by tests/api/test_fast_path.py and bench/fast_path_numerics.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gateway.backends import bucket_length, session_placement
from gateway.encoders import (
    AnyEncoder,
    CrossEncoder,
    LateInteractionEncoder,
    TextEncoder,
    VisionEncoder,
    build_encoder,
)
from gateway.encoders.base import EncodeOptions
from gateway.encoders.text import postprocess
from gateway.media.decode import decode_image
from gateway.registry import AnySpec, parse_entry
from gateway.runtime import Runtime
from tools.colbert_models import ColbertModel
from tools.cross_encoder import cross_encoder_entry
from tools.late_api import colbert_entry
from tools.models import minilm_entry, nomic_entry
from tools.vision import encode, photo_like

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "rain",
    "falls",
    "on",
    "quiet",
    "hills",
]


def mixed_texts(count: int = 40, seed: int = 0) -> list[str]:
    """Texts of 1 to ~150 words, so batches span several buckets."""
    rng = np.random.default_rng(seed)
    lengths = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144]
    lengths += [int(n) for n in rng.integers(1, 60, count - len(lengths))]
    return [" ".join(rng.choice(WORDS, n)) + "." for n in lengths]


@dataclass
class Case:
    """One model kind: how to build it and how to turn its inputs into items."""

    kind: str
    spec: AnySpec
    paths: dict[str, Path]
    items: Callable[[AnyEncoder], list[Any]]
    widths: Sequence[int] = ()  # Matryoshka widths to check (text models)
    layer_norm: bool = False


@dataclass
class Figures:
    kind: str
    placement: str
    max_abs_alone_vs_batch: float
    one_minus_cos_alone_vs_batch: float
    max_abs_unbucketed: float  # one batch of every length (padded to its longest bucket)
    min_cos_to_fp32: float
    max_score_diff: float | None = None
    per_width: dict[int, float] = field(default_factory=dict)
    device: str = ""  # where the session really ran (its placement: backends/ort_cuda.py)
    providers: list[str] = field(default_factory=list)  # the session's, in ONNX Runtime's order
    # Fast-path outputs (alone, in bucket batches, in one batch) holding NaN or infinity: any
    # fails a check, and the figures above are NaN then (never a min or max that skipped one).
    non_finite: int = 0
    # The largest |output| alone: raw outputs (a text model's per-token states) can reach
    # several units, where a fixed 1e-5 is tens of fp32 ulps; checks scale by it past 1.
    raw_scale: float = 1.0
    # Alone vs batch on what a client gets: a text model's vectors at every width (pooled, post-
    # processed, normalized); for other kinds their outputs, as above.
    max_abs_served: float = 0.0

    def row(self) -> list[str]:
        widths = " ".join(f"{w}:{c:.6f}" for w, c in sorted(self.per_width.items()))
        score = "" if self.max_score_diff is None else f"{self.max_score_diff:.2e}"
        return [
            self.kind,
            self.placement,
            f"{self.max_abs_alone_vs_batch:.2e}",
            f"{self.raw_scale:.2f}",
            f"{self.max_abs_served:.2e}",
            f"{self.one_minus_cos_alone_vs_batch:.2e}",
            f"{self.max_abs_unbucketed:.2e}",
            f"{self.min_cos_to_fp32:.6f}",
            score,
            widths,
            str(self.non_finite),
        ]


HEADER = [
    "kind",
    "backend/precision",
    "alone vs batch, max abs",
    "max |output|",
    "served vectors alone vs batch, max abs",
    "alone vs batch, 1-cos",
    "one batch of all lengths, max abs",
    "min cos to ORT fp32",
    "max |score diff|",
    "min cos per width",
    "non-finite outputs",
]


def _text_items(texts: Sequence[str]) -> Callable[[AnyEncoder], list[Any]]:
    def items(encoder: AnyEncoder) -> list[Any]:
        assert isinstance(encoder, TextEncoder)
        return list(encoder.prepare(texts, EncodeOptions()))

    return items


def _paths(spec: AnySpec, folder: Path) -> dict[str, Path]:
    return {role: folder / ref.path for role, ref in spec.files.items()}


def text_case(kind: str, entry: dict[str, Any], folder: Path, texts: Sequence[str]) -> Case:
    spec = parse_entry(kind, entry)
    widths = spec.output_widths  # the advertised Matryoshka widths (none: not resizable)
    layer_norm = bool(getattr(spec, "layer_norm", False))
    return Case(kind, spec, _paths(spec, folder), _text_items(texts), widths, layer_norm)


def minilm_case(kind: str, folder: Path, texts: Sequence[str]) -> Case:
    return text_case(kind, minilm_entry(folder), folder, texts)


def nomic_case(folder: Path, texts: Sequence[str]) -> Case:
    return text_case("nomic-text", nomic_entry(folder), folder, texts)


def vision_case(folder: Path, count: int = 10) -> Case:
    entry = {
        "kind": "image",
        "source": str(folder),
        "files": {"model": "model.onnx", "preprocessor": "preprocessor_config.json"},
        "dim": 64,
        "pooling": "cls",
    }
    spec = parse_entry("vision", entry)
    images = [
        encode(photo_like(seed, 64 + 16 * seed, 48 + 8 * seed), "PNG") for seed in range(count)
    ]

    def items(encoder: AnyEncoder) -> list[Any]:
        assert isinstance(encoder, VisionEncoder)
        return [encoder.prepare_image(decode_image(data)) for data in images]

    return Case("vision", spec, _paths(spec, folder), items)


def colbert_case(model: ColbertModel, texts: Sequence[str]) -> Case:
    spec = parse_entry(f"colbert-{model.name}", colbert_entry(model, "graph"))

    def items(encoder: AnyEncoder) -> list[Any]:
        half = len(texts) // 2
        assert isinstance(encoder, LateInteractionEncoder)
        late = encoder.tokenize(texts[:half], task="query")
        return list(late + encoder.tokenize(texts[half:], task="document"))

    return Case(f"colbert-{model.name}", spec, _paths(spec, model.folder), items)


def cross_case(folder: Path, texts: Sequence[str]) -> Case:
    spec = parse_entry("cross-encoder", cross_encoder_entry(folder))

    def items(encoder: AnyEncoder) -> list[Any]:
        assert isinstance(encoder, CrossEncoder)
        return list(encoder.tokenize_pairs("what falls on the hills?", texts))

    return Case("cross-encoder", spec, _paths(spec, folder), items)


def _bucket_batches(items: list[Any], step: int | None, size: int = 32) -> list[list[int]]:
    """Indices of batches as the batcher would draw them: same bucket (of `step`) when
    bucketed, else any."""
    order = sorted(range(len(items)), key=lambda i: items[i].length)
    groups: dict[int, list[int]] = {}
    for index in order:
        key = bucket_length(items[index].length, step) if step is not None else 0
        groups.setdefault(key, []).append(index)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


def _flat(outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(o, dtype=np.float32) for o in outputs]


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    cosines: np.ndarray = (a * b).sum(1) / norms
    return cosines


def worst_max(values: Iterable[float]) -> float:
    """The largest value, NaN if any is NaN (the builtin max skips a NaN that is not first)."""
    return float(np.max(np.asarray(list(values), dtype=np.float64)))


def worst_min(values: Iterable[float]) -> float:
    """The smallest value, NaN if any is NaN."""
    return float(np.min(np.asarray(list(values), dtype=np.float64)))


def _vectors(encoder: AnyEncoder, raw: list[np.ndarray]) -> list[np.ndarray]:
    """What parity is judged on: pooled vectors for text embedders (their raw outputs are
    already pooled rows, as float32 here), per-token vectors for ColBERT, the outputs
    themselves otherwise."""
    if isinstance(encoder, TextEncoder):
        return list(encoder.pool(raw))
    return raw


def _providers(encoder: AnyEncoder) -> list[str]:
    session = getattr(encoder, "session", None)
    return list(session.get_providers()) if session is not None else []


def served_difference(
    case: Case, encoder: AnyEncoder, alone: list[np.ndarray], batched: list[np.ndarray]
) -> float | None:
    """Alone vs batch on a text model's served vectors, the worst over its widths (None for
    other kinds, whose outputs are what they serve)."""
    if not isinstance(encoder, TextEncoder):
        return None
    pooled_alone, pooled_batched = encoder.pool(alone), encoder.pool(batched)
    worst = 0.0
    for width in case.widths or (pooled_alone.shape[1],):
        a, b = (
            postprocess(p, layer_norm=case.layer_norm, dimensions=width, normalize=True)
            for p in (pooled_alone, pooled_batched)
        )
        worst = max(worst, worst_max([float(np.abs(a - b).max())]))
    return worst


def measure(case: Case, fast: Runtime, exact: Runtime) -> Figures:
    """Parity to the exact mode and alone-vs-batch invariance of one kind on `fast`."""
    reference = build_encoder(case.spec, case.paths, exact)
    encoder = build_encoder(case.spec, case.paths, fast)
    placement = session_placement(encoder)
    assert placement is not None
    items = case.items(encoder)
    alone = _flat([encoder.run([item])[0] for item in items])
    batched: list[np.ndarray] = [np.empty(0)] * len(items)
    step = placement.bucket_step if placement.bucketed else None
    for batch in _bucket_batches(items, step):
        for index, out in zip(batch, encoder.run([items[i] for i in batch]), strict=True):
            batched[index] = np.asarray(out, dtype=np.float32)
    mixed = _flat(encoder.run(items))  # one batch of everything, padded to the longest
    expected = _vectors(reference, _flat(reference.run(items)))
    vectors = _vectors(encoder, alone)
    max_abs = worst_max(float(np.abs(a - b).max()) for a, b in zip(alone, batched, strict=True))
    one_minus_cos = worst_max(
        float(1 - _cos_rows(a, b).min()) for a, b in zip(alone, batched, strict=True)
    )
    unbucketed = worst_max(float(np.abs(a - b).max()) for a, b in zip(alone, mixed, strict=True))
    figures = Figures(
        case.kind,
        f"{placement.backend} {placement.precision} on {placement.device}",
        max_abs,
        one_minus_cos,
        unbucketed,
        worst_min(float(_cos_rows(a, b).min()) for a, b in zip(vectors, expected, strict=True)),
        device=placement.device,
        providers=_providers(encoder),
        non_finite=sum(not np.isfinite(a).all() for a in [*alone, *batched, *mixed]),
    )
    figures.raw_scale = worst_max(float(np.abs(a).max()) for a in alone)
    served = served_difference(case, encoder, alone, batched)
    figures.max_abs_served = max_abs if served is None else served
    if case.kind == "cross-encoder":
        figures.max_score_diff = worst_max(
            float(np.abs(a - b).max()) for a, b in zip(vectors, expected, strict=True)
        )
    for width in case.widths:
        ours = postprocess(
            np.stack(vectors), layer_norm=case.layer_norm, dimensions=width, normalize=True
        )
        theirs = postprocess(
            np.stack(expected), layer_norm=case.layer_norm, dimensions=width, normalize=True
        )
        figures.per_width[width] = float(_cos_rows(ours, theirs).min())
    return figures
