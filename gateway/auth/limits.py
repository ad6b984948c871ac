"""Token buckets: a per-minute allowance that refills continuously (no window-edge bursts)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """`per_minute` tokens at most; each second refills per_minute / 60 of them."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` tokens are there (0 when they are now); takes nothing."""
        self._refill()
        missing = cost - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, cost: float) -> None:
        self._refill()
        self._tokens -= cost


def retry_after_seconds(wait: float) -> int:
    """Retry-After is whole seconds; never 0, or clients would retry at once."""
    return max(1, math.ceil(wait))
