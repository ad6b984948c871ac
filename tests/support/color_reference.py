"""The seed's colour statistics recipe, the reference for gateway.media's image_stats."""

from __future__ import annotations

import colorsys
from collections import Counter

import numpy as np


def seed_reference(pixels: np.ndarray, method: str) -> tuple[list[float], list[float]]:
    """The seed's Python recipe (colorsys, Counter), scalar and slow, on [N, 3] uint8 pixels;
    bins are (h, s, v) tuples and ties go to the lowest bin, as documented in stats.py."""
    values = pixels.astype(np.float64)
    if method == "geometric":
        mean = np.exp(np.log(np.maximum(values, 1e-8)).mean(axis=0)) / 255
    else:
        mean = values.mean(axis=0) / 255
    bins = []
    for r, g, b in values / 255:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        bins.append((int(h * 10), int(s * 10), int(v * 10)))
    counts = Counter(bins)
    best = max(counts.values())
    winner = min(key for key, count in counts.items() if count == best)
    first = bins.index(winner)
    return list(mean), list(values[first] / 255)
