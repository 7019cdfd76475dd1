"""The answer's rate-limit parts: `Retry-After`, and the IETF draft's `RateLimit-Policy` / `RateLimit`
(draft-ietf-httpapi-ratelimit-headers: `"name";q=QUOTA;w=WINDOW` and `"name";r=REMAINING;t=SECONDS`).

A 429 names the limit that refused; an allowed answer names every limit that counted it, so a client sees
its budget shrink and can slow down before its first 429 (as Envoy's local rate limit tells it).
"""

from __future__ import annotations

import math

from authproxy.policy.rate_limit import AppliedLimit, RateLimitState

__all__ = ["FIELD_NAMES", "allowed_fields", "limit_answer"]

FIELD_NAMES = ("RateLimit-Policy", "RateLimit")


def _sf_string(text: str) -> str:
    # An RFC 8941 sf-string: printable ASCII, with '"' and '\' escaped.
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _policy(limits: tuple[AppliedLimit, ...]) -> str:
    return ", ".join(
        f"{_sf_string(limit.name)};q={limit.rate.count};w={math.ceil(limit.rate.period)}" for limit in limits
    )


def limit_answer(state: RateLimitState) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """Extra body fields and headers of a rate-limit denial (429 or, when the store failed, 503)."""
    refused = state.refused_by
    if refused is None:  # the store failed: the caller is not over any limit, so no RateLimit fields
        return {"retry_after": 1}, [("Retry-After", "1")]
    seconds = max(1, math.ceil(state.retry_after))
    headers = [
        ("Retry-After", str(seconds)),
        ("RateLimit-Policy", _policy(state.limits)),
        ("RateLimit", f"{_sf_string(refused.name)};r=0;t={seconds}"),
    ]
    return {"limit": refused.name, "retry_after": seconds}, headers


def allowed_fields(state: RateLimitState | None) -> tuple[tuple[str, str], ...]:
    """`RateLimit-Policy` and `RateLimit` of an allowed answer; none when no token was taken (no limit
    applies, `explain`, or the store failed and on_error let the request through)."""
    if state is None or not state.remaining or state.refused_by is not None:
        return ()
    items = []
    for limit, left in zip(state.limits, state.remaining, strict=True):
        # `t`: when the bucket is full again. `left` is whole tokens, so this errs towards the later time.
        full_in = math.ceil((limit.rate.burst - left) / limit.rate.per_second)
        items.append(f"{_sf_string(limit.name)};r={left};t={full_in}")
    return (("RateLimit-Policy", _policy(state.limits)), ("RateLimit", ", ".join(items)))
