"""What the gate records about rate limits on a Decision: which limits apply, and what taking a token did."""

from __future__ import annotations

from dataclasses import dataclass

from authproxy.config.limits_model import Rate

__all__ = ["AppliedLimit", "RateLimitState"]


@dataclass(frozen=True, slots=True)
class AppliedLimit:
    name: str  # "default", a route key as written in rate_limits.routes, or a scope action
    rate: Rate


@dataclass(frozen=True, slots=True)
class RateLimitState:
    key: str  # the identity field callers are told apart by: user_id | session_id
    caller: str | None  # its value; None when the token lacks it (such callers share one budget)
    limits: tuple[AppliedLimit, ...]
    remaining: tuple[int, ...] = ()  # per limit, after this request; () when no token was taken (explain)
    limiting: int = -1  # index into `limits` of the one that refused; -1 when none did
    retry_after: float = 0.0  # seconds until a request would pass again
    backend_error: bool = False  # the store failed; on_error decided

    @property
    def refused_by(self) -> AppliedLimit | None:
        return self.limits[self.limiting] if self.limiting >= 0 else None

    def describe(self) -> str:
        """For `authproxy explain`: every limit that counts this request, and whose budget it uses."""
        limits = "; ".join(f"{limit.name} {limit.rate.text}" for limit in self.limits)
        caller = f"'{self.caller}'" if self.caller is not None else "(absent: callers without one share)"
        return f"{limits} (per {self.key} {caller})"

    def log_fields(self) -> dict[str, object]:
        """Decision-log fields: the limit that refused, or that the store failed."""
        if self.backend_error:
            return {"rate_limit_error": "backend unavailable"}
        refused = self.refused_by
        if refused is None:
            return {}
        return {"rate_limit": refused.name, "retry_after_s": round(self.retry_after, 3)}
