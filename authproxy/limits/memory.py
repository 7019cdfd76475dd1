"""The in-process bucket store: one per worker process, so N workers (or replicas) admit up to N times a
limit between them. Use the Redis backend for a budget shared by all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from authproxy.config.limits_model import Rate
from authproxy.limits.bucket import Bucket, Taken, after_take, level, take_all

__all__ = ["MemoryBuckets"]

_FIRST_SWEEP = 4096


class MemoryBuckets:
    """Buckets in a dict; those refilled to the brim are dropped when the dict has doubled since the
    last sweep, so memory follows the callers active within one refill time, at amortised O(1)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        self._sweep_at = _FIRST_SWEEP

    def __len__(self) -> int:
        return len(self._buckets)

    async def take(self, keys: Sequence[tuple[str, Rate]]) -> Taken:
        return self.take_now(keys)

    def take_now(self, keys: Sequence[tuple[str, Rate]]) -> Taken:
        now = self._clock()
        buckets = self._buckets
        levels = [level(buckets.get(key), rate, now) for key, rate in keys]
        taken = take_all(levels, [rate for _, rate in keys])
        if taken.allowed:
            for (key, rate), tokens in zip(keys, levels, strict=True):
                buckets[key] = after_take(tokens, rate, now)
            if len(buckets) >= self._sweep_at:
                self._sweep(now)
        return taken

    def _sweep(self, now: float) -> None:
        self._buckets = {key: b for key, b in self._buckets.items() if b.full_at > now}
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(self._buckets))

    async def close(self) -> None:
        self._buckets.clear()
