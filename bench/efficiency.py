"""How far each row is from the machine's physical limit.

Method: a BERT-style encoder costs, per sequence of S
tokens, S * (2 * W + 4 * H * L * S) FLOPs, W being the encoder's matmul weights
(L * (4 H^2 + 2 H I)) and 4 H L S^2 the attention products. "Useful" GFLOP/s counts real
tokens only (no padding) over wall time. The peaks are measured at the start of the run on the
same cores and threads: fp32 with numpy's sgemm, bf16 with torch's (oneDNN/AMX) matmul, the
best of a few 2048^3 products; the share of the fp32 peak can exceed 100% for bf16 rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.backends.selection import bf16_support, cpu_flags

GEMM_N = 2048
GEMM_REPS = 4


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    intermediate: int

    @classmethod
    def from_config(cls, config: Path) -> Shape:
        c = json.loads(config.read_text())
        return cls(c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"])

    def flops(self, tokens: Sequence[int]) -> float:
        h, n = self.hidden, self.layers
        weights = n * (4 * h * h + 2 * h * self.intermediate)
        return float(sum(s * (2 * weights + 4 * h * n * s) for s in tokens))


def _best(product: Any, flops: float) -> float:
    best = 0.0
    for _ in range(GEMM_REPS):
        started = time.perf_counter()
        product()
        best = max(best, flops / (time.perf_counter() - started) / 1e9)
    return best


def gemm_peaks(threads: int, flags: frozenset[str] | None = None) -> dict[str, float]:
    """Measured GFLOP/s of a large fp32 and bf16 matrix product on `threads` threads.

    The bf16 one only where the CPU has bf16 units (`flags`: /proc/cpuinfo's by default):
    elsewhere torch emulates it (one 2048^3 product took 65 s on an AVX2-only EPYC, so a bench
    spent minutes on a peak that no backend there runs at)."""
    flops = 2.0 * GEMM_N**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    peaks = {"fp32": _best(lambda: a @ b, flops)}
    if bf16_support(cpu_flags() if flags is None else flags) is None:
        return peaks
    try:
        import torch

        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
        peaks["bf16"] = _best(lambda: ta @ tb, flops)
    except ImportError:
        pass
    return peaks


def efficiency_rows(
    rows: Sequence[dict[str, Any]], flops: float, cores: int, peaks: dict[str, float]
) -> list[dict[str, Any]]:
    """texts/s per core, useful GFLOP/s and its share of each peak, per summary row."""
    out = []
    for row in rows:
        rate = row.get("texts_per_s")
        if not rate or not row.get("texts"):
            continue
        useful = flops / row["texts"] * rate / 1e9
        entry = {
            "label": row["label"],
            "load": row["load"],
            "texts_per_s_per_core": rate / cores,
            "useful_gflops": useful,
        }
        for dtype, peak in peaks.items():
            entry[f"share_{dtype}_peak"] = useful / peak if peak else None
        out.append(entry)
    return out


def efficiency_table(rows: Sequence[dict[str, Any]], peaks: dict[str, float]) -> str:
    dtypes = list(peaks)
    head = ["system", "load", "texts/s per core", "useful GFLOP/s"]
    head += [f"% of {d} peak ({peaks[d]:.0f})" for d in dtypes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["label"],
            r["load"] or "in-process",
            f"{r['texts_per_s_per_core']:.1f}",
            f"{r['useful_gflops']:.0f}",
        ]
        cells += [f"{100 * r[f'share_{d}_peak']:.0f}%" for d in dtypes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
