"""Dry run, shadow policy and upstream divergence: a policy tried on real traffic before it answers anyone.

- Dry run (`policy.dry_run`): a request the gate would refuse with 401, 403 or 429, or a stage would refuse
  after it, is forwarded as the client sent it; the access line carries `dry_run` and `would`.
- Shadow (`policy.shadow`): the shadow runtime's gate decides beside the enforced one (no rate limits spent,
  none applied: a 429 is the limits' answer, not the policy's, and is not compared). The comparison is of
  the gate's decisions: checks after the gate run only for the enforced policy.
- Upstream divergence: an allowed request the upstream answers 401/403, or (in dry run) a would-be refusal
  it answers 2xx: the two authorizations disagree about this request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authproxy.errors import status_of
from authproxy.policy.decision import Decision

__all__ = ["Compared", "dry_run_passes", "shadow_differs", "upstream_divergence", "verdict"]

_GATE_DRY_RUN = frozenset({401, 403, 429})  # a gate refusal dry run forwards: the policy's, not a bad request
_LIMITS = frozenset({"rate_limited", "rate_limit_unavailable"})
_REFUSED_UPSTREAM = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class Compared:
    """The enforced and the shadow gate decisions on one request, where they differ."""

    enforced: Decision
    shadow: Decision

    def fields(self) -> Mapping[str, object]:
        e, s = self.enforced, self.shadow
        return {
            "route": e.route,
            "shadow_route": s.route,
            "subject": e.subject,
            "enforced": verdict(e),
            "enforced_error": e.error,
            "shadow": verdict(s),
            "shadow_error": s.error,
        }


def verdict(decision: Decision) -> str:
    """`allow`, or the status a refusal is answered with ("403"): a metric label and a log value."""
    return "allow" if decision.allowed or decision.error is None else str(status_of(decision.error))


def dry_run_passes(dry_run: bool, decision: Decision) -> bool:
    """Whether a gate refusal is forwarded instead of answered: dry run, and the policy's own refusal."""
    if not dry_run or decision.allowed or decision.error is None:
        return False
    return status_of(decision.error) in _GATE_DRY_RUN


def shadow_differs(enforced: Decision, shadow: Decision) -> Compared | None:
    if enforced.error in _LIMITS:
        return None
    if (enforced.allowed, enforced.error) == (shadow.allowed, shadow.error):
        return None
    return Compared(enforced, shadow)


def upstream_divergence(
    decision: Decision | None, would: Decision | None, upstream_status: int | None
) -> tuple[str, str] | None:
    """(ours, upstream) when the upstream's answer disagrees with our decision; None when it agrees."""
    if upstream_status is None or decision is None:
        return None
    if would is not None:
        return (verdict(would), str(upstream_status)) if 200 <= upstream_status < 300 else None
    if decision.allowed and upstream_status in _REFUSED_UPSTREAM:
        return ("allow", str(upstream_status))
    return None
