"""The batcher measures the runtime's arena growth once per shape the runtime sees: rows and
the padded length (not the longest input), so same-bucket batches do not read /proc again."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gateway import batching
from gateway.backends import bucket_length
from gateway.batching import Batcher


@dataclass(frozen=True)
class Text:
    length: int


class Encoder:
    spec: Any = SimpleNamespace(name="growth")
    batch_invariant = True

    def run(self, items: list[Text]) -> list[np.ndarray]:
        return [np.zeros(4, dtype=np.float32) for _ in items]


@pytest.mark.parametrize(
    ("bucket", "measured"),
    [(partial(bucket_length, step=8), 2), (None, 3)],  # 17 and 20 share the 24-token bucket
)
def test_growth_is_measured_once_per_padded_shape(
    monkeypatch: pytest.MonkeyPatch, bucket: Any, measured: int
) -> None:
    reads: list[int] = []
    monkeypatch.setattr(batching, "process_anonymous", lambda: reads.append(1) or 0)
    subject = Batcher(
        Encoder(),  # type: ignore[arg-type]
        ThreadPoolExecutor(1),
        max_batch_size=8,
        max_batch_tokens=10_000,
        max_queue=100,
        measure_growth=True,
        bucket=bucket,
    )
    for length in (17, 20, 17, 30):  # one at a time: each is a batch of one
        asyncio.run(subject.submit([Text(length)]))
    assert len(reads) == 2 * measured  # a read before and after each measured run
