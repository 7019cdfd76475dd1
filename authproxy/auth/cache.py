"""Bounded LRU of verified tokens, keyed by sha256(token) and the key-set generation.

It caches verified claims, never verdicts: only successfully verified tokens are stored, time bounds
are re-checked on every hit, and route and scope evaluation always run in full afterwards.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from authproxy.auth.verified import VerifiedToken
from authproxy.errors import InvalidToken

__all__ = ["CacheStats", "VerificationCache"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    size: int
    capacity: int


class VerificationCache:
    """At most `capacity` entries; capacity 0 disables caching."""

    def __init__(self, capacity: int, leeway: float) -> None:
        if capacity < 0:
            raise ValueError("cache capacity must not be negative")
        self._capacity = capacity
        self._leeway = leeway
        self._entries: OrderedDict[tuple[bytes, int], VerifiedToken] = OrderedDict()
        self._generation: int | None = None
        self.hits = 0
        self.misses = 0

    def get(self, digest: bytes, generation: int, now: float) -> VerifiedToken | None:
        """The cached token if still within its time bounds; InvalidToken when it no longer is."""
        self._observe(generation)
        key = (digest, generation)
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        if found.exp <= now - self._leeway:
            del self._entries[key]
            raise InvalidToken("token expired")
        if found.nbf is not None and found.nbf > now + self._leeway:
            raise InvalidToken("token not yet valid")
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, digest: bytes, generation: int, token: VerifiedToken) -> None:
        """Store a token that has just been verified under `generation`."""
        if self._capacity == 0:
            return
        self._observe(generation)
        key = (digest, generation)
        self._entries[key] = token
        self._entries.move_to_end(key)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, len(self._entries), self._capacity)

    def _observe(self, generation: int) -> None:
        # Entries of an older generation are unreachable by key already; dropping them frees the
        # memory at once instead of waiting for LRU eviction.
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation
