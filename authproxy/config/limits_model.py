"""Frozen rate-limit settings (the `rate_limits` section), built by config/limits.py; no I/O here."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

__all__ = ["CallerKey", "LimitRule", "Rate", "RateLimitsConfig", "RedisOptions"]

# What tells callers apart: an identity field of the token, or the client's address (public routes too).
CallerKey = Literal["user_id", "session_id", "client_ip"]


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket: `count` tokens refill evenly over `period` seconds; it holds at most `burst`."""

    count: int
    period: float
    burst: int
    text: str  # as written ("10/min", or "10/min burst 5"), for messages and `explain`

    @property
    def per_second(self) -> float:
        return self.count / self.period


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One entry of `rate_limits.routes`: a route key or a scope action, and the routes it covers."""

    name: str  # the key as written: "POST /agents/{agent_id}/runs" or "agents:run"
    rate: Rate
    line: int
    # The policy route keys (as the route table reports them) whose requests this limit counts.
    routes: tuple[str, ...]
    public: bool = False  # names a public route (key: client_ip), which the default does not count


@dataclass(frozen=True, slots=True)
class RedisOptions:
    timeout: float = 0.1  # the longest a request waits for Redis before on_error applies
    on_error: Literal["deny", "allow"] = "deny"  # deny: fail closed (503); allow: fail open


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    file: str
    line: int
    key: CallerKey = "user_id"
    backend: str = "memory"  # "memory", or a redis://, rediss:// or unix:// URL (may hold a password)
    redis: RedisOptions = RedisOptions()
    default: Rate | None = None  # per caller, across every route that needs a token
    rules: tuple[LimitRule, ...] = ()
    # key client_ip: peers whose X-Forwarded-For is believed (limits/client.py); empty: the peer is the client
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
