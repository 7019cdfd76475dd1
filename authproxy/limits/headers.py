"""The answer's rate-limit parts: `Retry-After`, and the IETF draft's `RateLimit-Policy` / `RateLimit`
(draft-ietf-httpapi-ratelimit-headers: `"name";q=QUOTA;w=WINDOW` and `"name";r=REMAINING;t=SECONDS`).
"""

from __future__ import annotations

import math

from authproxy.policy.rate_limit import RateLimitState

__all__ = ["limit_answer"]


def _sf_string(text: str) -> str:
    # An RFC 8941 sf-string: printable ASCII, with '"' and '\' escaped.
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def limit_answer(state: RateLimitState) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """Extra body fields and headers of a rate-limit denial (429 or, when the store failed, 503)."""
    refused = state.refused_by
    if refused is None:  # the store failed: the caller is not over any limit, so no RateLimit fields
        return {"retry_after": 1}, [("Retry-After", "1")]
    seconds = max(1, math.ceil(state.retry_after))
    policy = ", ".join(
        f"{_sf_string(limit.name)};q={limit.rate.count};w={math.ceil(limit.rate.period)}"
        for limit in state.limits
    )
    headers = [
        ("Retry-After", str(seconds)),
        ("RateLimit-Policy", policy),
        ("RateLimit", f"{_sf_string(refused.name)};r=0;t={seconds}"),
    ]
    return {"limit": refused.name, "retry_after": seconds}, headers
