"""Whether every system of a cell returned the same vectors: each against one reference row."""

from __future__ import annotations

from typing import Any

import numpy as np

# The agreement reference, in order of preference: the exact mode in-process first. Never a
# gateway row: the gateway compared with itself would always agree.
REFERENCES = ("raw", "raw-ov-fp32", "loop", "st", "raw-ov-bf16", "fastembed", "infinity")


def check_agreement(cell: list[dict[str, Any]]) -> str | None:
    """Set each sample's `min_cos`: its vectors against raw ORT's (else the first of REFERENCES
    measured) for the same texts, so a fast system that returns wrong vectors stands out. A
    vector holding NaN or infinity (in the sample or the reference) makes `min_cos` NaN, which
    every check counts as a disagreement (`report.agrees`), and is counted in
    `non_finite_rows`. Returns a note when no system can be the reference (min_cos None)."""
    with_vectors = [s for s in cell if "_vectors" in s]
    if not with_vectors:
        return None
    reference = next((s for name in REFERENCES for s in with_vectors if s["system"] == name), None)
    if reference is None:
        for s in with_vectors:
            s.pop("_vectors")
            s["agreement_reference"], s["min_cos"] = None, None
        systems = sorted({s["system"] for s in with_vectors})
        return (
            f"{with_vectors[0]['model']}/{with_vectors[0]['workload']}: vectors NOT checked: "
            f"no reference system among {systems} (add raw to --systems)"
        )
    ref = np.asarray(reference["_vectors"], dtype=np.float64)
    ref_finite = bool(np.isfinite(ref).all())
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    for s in with_vectors:
        vectors = np.asarray(s.pop("_vectors"), dtype=np.float64)
        s["agreement_reference"] = reference["system"]
        if vectors.shape != ref.shape:
            s["min_cos"] = -1.0
            s["error"] = f"returned {vectors.shape} vectors, expected {ref.shape}"
            continue
        s["non_finite_rows"] = int((~np.isfinite(vectors).all(axis=1)).sum())
        if s["non_finite_rows"] or not ref_finite:
            s["min_cos"] = float("nan")
            continue
        with np.errstate(invalid="ignore", divide="ignore"):  # a zero vector: NaN, disagrees
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            s["min_cos"] = float((vectors * ref).sum(axis=1).min())
    if len(ref) > 1:
        # The check means something only if different texts are well below the floor
        # (random-weight models can map every text to nearly one vector).
        cross = float(np.median((ref[:-1] * ref[1:]).sum(axis=1)))
        for s in cell:
            s["cross_text_cos_median"] = cross
    return None
