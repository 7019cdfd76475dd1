"""The decision: one immutable value that the proxy renders as a response and `authproxy explain` prints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from authproxy.errors import ConditionFailed, DenialCode, InsufficientScope, RequestRejected
from authproxy.policy.conditions import Judged
from authproxy.policy.rate_limit import RateLimitState
from authproxy.policy.reads import Reads
from authproxy.policy.stages import Stage

__all__ = ["Decision", "deny"]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    error: DenialCode | None  # the wire code of a denial (the error class's `code`); None if allowed
    reason: str
    route: str | None = None  # the matched pattern as written ("POST /agents/{agent_id}/runs"), or None
    public: bool = False
    required_scopes: tuple[str, ...] = ()
    missing_scopes: tuple[str, ...] = ()
    subject: str | None = None
    session_id: str | None = None
    scopes: tuple[str, ...] = ()  # the caller's scopes, sorted, for identity headers and logs
    jti: str | None = None
    params: tuple[tuple[str, str], ...] = field(default=())  # path parameters bound by the route
    rate_limit: RateLimitState | None = None  # the limits that apply to an authenticated request
    # What follows the allow (policy/stages.py), the caller's ids bound. On a denial it is kept when the
    # route has one, so an answer can say which kind of route refused (an MCP challenge names its metadata).
    stage: Stage | None = None
    # The route's `when`, as judged at the gate or by the stage that refused on it (explain, access line).
    condition: Judged | None = None
    # The verified token's claims, for the conditions judged after the gate (an MCP tool rule's `when`);
    # never logged nor rendered.
    claims: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def reads(self) -> Reads:
        """What carrying out this decision reads beyond the request line (nothing when it has no stage)."""
        return Reads.NOTHING if self.stage is None else self.stage.reads


def deny(decision: Decision, error: RequestRejected) -> Decision:
    """`decision` refused by `error`: the one way a refusal is made, at the gate or in a stage after it.

    The identity, route, limits and stage stay (the access line and the answer's challenge read them); a
    refusal for want of scopes names the scopes, any other keeps those the route required.
    """
    if isinstance(error, InsufficientScope):
        return replace(
            decision,
            allowed=False,
            error=error.code,
            reason=error.reason,
            required_scopes=error.required,
            missing_scopes=error.missing,
        )
    if isinstance(error, ConditionFailed):
        judged = Judged(error.condition, error.value, False)
        return replace(decision, allowed=False, error=error.code, reason=error.reason, condition=judged)
    return replace(decision, allowed=False, error=error.code, reason=error.reason)
