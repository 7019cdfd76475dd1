"""apply_limits(): the rate-limit step of the gate, run on a request the policy has allowed (public
routes included: only limits keyed by client_ip name them).

With `consume` (the proxy) it takes a token from every bucket that applies and turns the allow into a
`rate_limited` denial (429) when one is empty; when the store fails, `on_error` either denies
(`rate_limit_unavailable`, 503: the store failed, not the caller) or lets the request through, marked.
Without `consume` (`authproxy explain`) it only records which limits apply.
"""

from __future__ import annotations

from dataclasses import replace

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.auth.claims import Identity
from authproxy.config.limits_model import RateLimitsConfig
from authproxy.errors import RateLimitBackendError, RateLimited, RateLimitUnavailable
from authproxy.limits.client import client_address
from authproxy.limits.plan import Limits
from authproxy.policy.decision import Decision, deny
from authproxy.policy.rate_limit import RateLimitState

__all__ = ["KEY_PREFIX", "apply_limits", "bucket_key"]

KEY_PREFIX = "authproxy:rl:"


def bucket_key(caller: str | None, limit: str) -> str:
    # The caller sits in a Redis hash tag, so all of one caller's buckets share a cluster slot.
    return f"{KEY_PREFIX}{{{caller or ''}}}:{limit}"


Headers = CIMultiDictProxy[str] | CIMultiDict[str]


def _caller(
    config: RateLimitsConfig, identity: Identity | None, peer: str | None, headers: Headers | None
) -> str | None:
    if config.key == "client_ip":
        forwarded_for = headers.getall("X-Forwarded-For", ()) if headers is not None else ()
        return client_address(peer, forwarded_for, config.trusted_proxies)
    if identity is None:
        return None
    return identity.user_id if config.key == "user_id" else identity.session_id


async def apply_limits(
    limits: Limits,
    decision: Decision,
    identity: Identity | None,
    *,
    consume: bool,
    peer: str | None = None,
    headers: Headers | None = None,
) -> Decision:
    """`identity` is None on a public route; `peer` (the TCP peer) and the request's X-Forwarded-For
    (in `headers`) name the client for `key: client_ip`."""
    applied = limits.for_route(decision.route, public=decision.public)
    config = limits.config
    if not applied or config is None:
        return decision
    caller = _caller(config, identity, peer, headers)
    if not consume or limits.store is None:
        return replace(decision, rate_limit=RateLimitState(config.key, caller, applied))
    keys = [(bucket_key(caller, limit.name), limit.rate) for limit in applied]
    try:
        taken = await limits.store.take(keys)
    except RateLimitBackendError:
        state = RateLimitState(config.key, caller, applied, backend_error=True)
        if config.redis.on_error == "allow":
            return replace(decision, rate_limit=state)
        return deny(replace(decision, rate_limit=state), RateLimitUnavailable("rate limit store unavailable"))
    state = RateLimitState(config.key, caller, applied, taken.remaining, taken.limiting, taken.retry_after)
    if taken.allowed:
        return replace(decision, rate_limit=state)
    refused = applied[taken.limiting]
    exceeded = RateLimited(f"rate limit {refused.name} ({refused.rate.text}) exceeded")
    return deny(replace(decision, rate_limit=state), exceeded)
