"""Limits: the live rate-limit objects of one Runtime: which limits each route counts, and the store.

Built with the Runtime; a reload keeps the running store when the backend settings are unchanged, so
budgets (and the Redis pool) survive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from authproxy.config.limits_model import Rate, RateLimitsConfig
from authproxy.limits.bucket import Taken
from authproxy.limits.memory import MemoryBuckets
from authproxy.policy.rate_limit import AppliedLimit

__all__ = ["DEFAULT_LIMIT", "NO_LIMITS", "BucketStore", "Limits", "build_limits"]

DEFAULT_LIMIT = "default"  # the name of the global per-caller limit, in headers, logs and metrics


class BucketStore(Protocol):
    async def take(self, keys: Sequence[tuple[str, Rate]]) -> Taken: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    config: RateLimitsConfig | None = None
    by_route: dict[str, tuple[AppliedLimit, ...]] = field(default_factory=dict)
    other: tuple[AppliedLimit, ...] = ()  # routes no limit names (and requests no route matched)
    store: BucketStore | None = None

    def for_route(self, route: str | None, *, public: bool = False) -> tuple[AppliedLimit, ...]:
        """A public route counts only the limits that name it (key: client_ip): never the default, which
        would put health checks and the like under a budget nobody asked for."""
        if route is None:
            return self.other
        return self.by_route.get(route, () if public else self.other)

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()


NO_LIMITS = Limits()


def _store_for(config: RateLimitsConfig, reuse: Limits | None) -> BucketStore:
    if reuse is not None and reuse.config is not None and reuse.store is not None:
        old = reuse.config
        if (old.backend, old.redis.timeout) == (config.backend, config.redis.timeout):
            return reuse.store
    if config.backend == "memory":
        return MemoryBuckets()
    # Only a Redis backend pays for importing the client (a good part of a second on a busy machine).
    from authproxy.limits.redis_store import RedisBuckets

    return RedisBuckets(config.backend, config.redis.timeout)


def build_limits(
    config: RateLimitsConfig | None, *, reuse: Limits | None = None, store: BucketStore | None = None
) -> Limits:
    """`store` replaces the configured backend (`authproxy test` counts on a frozen in-process clock)."""
    if config is None:
        return NO_LIMITS
    default = (AppliedLimit(DEFAULT_LIMIT, config.default),) if config.default is not None else ()
    by_route: dict[str, list[AppliedLimit]] = {}
    for rule in config.rules:
        for route in rule.routes:
            start = [] if rule.public else list(default)
            by_route.setdefault(route, start).append(AppliedLimit(rule.name, rule.rate))
    return Limits(
        config=config,
        by_route={route: tuple(limits) for route, limits in by_route.items()},
        other=default,
        store=store if store is not None else _store_for(config, reuse),
    )
