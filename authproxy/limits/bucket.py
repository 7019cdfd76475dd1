"""Token-bucket arithmetic, pure: the caller passes the time, so tests drive a fake clock.

A bucket holds up to `burst` tokens and refills at `count/period` tokens a second; a request takes one
token from every bucket that applies to it, or from none (all or nothing). An absent bucket is full, so a
store may forget any bucket that has refilled to the brim without changing an answer. The script in
redis_store.py do the same sums in Lua, on Redis's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authproxy.config.limits_model import Rate

__all__ = ["Bucket", "Taken", "after_take", "level", "take_all"]


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float  # tokens held at `stamp`
    stamp: float  # seconds, on the store's clock
    full_at: float  # when it will hold `burst` again: from then on it may be forgotten


@dataclass(frozen=True, slots=True)
class Taken:
    allowed: bool
    retry_after: float  # seconds until every bucket holds a token again; 0 when allowed
    remaining: tuple[int, ...]  # whole tokens left in each bucket after this request
    limiting: int = -1  # index of the bucket that waits longest when refused; -1 when allowed


def level(bucket: Bucket | None, rate: Rate, now: float) -> float:
    """Tokens held at `now`; a clock that steps back adds none (and takes none away)."""
    if bucket is None:
        return float(rate.burst)
    elapsed = max(0.0, now - bucket.stamp)
    return min(float(rate.burst), bucket.tokens + elapsed * rate.per_second)


def take_all(levels: Sequence[float], rates: Sequence[Rate]) -> Taken:
    """Take one token from each bucket if every one holds a whole token; otherwise take nothing."""
    wait, limiting = 0.0, -1
    for i, (tokens, rate) in enumerate(zip(levels, rates, strict=True)):
        if tokens < 1.0:
            need = (1.0 - tokens) / rate.per_second
            if need > wait:
                wait, limiting = need, i
    if limiting >= 0:
        return Taken(False, wait, tuple(int(tokens) for tokens in levels), limiting)
    return Taken(True, 0.0, tuple(int(tokens - 1.0) for tokens in levels))


def after_take(tokens: float, rate: Rate, now: float) -> Bucket:
    """The bucket once one token is taken from `tokens` at `now`."""
    left = tokens - 1.0
    return Bucket(left, now, now + (rate.burst - left) / rate.per_second)
