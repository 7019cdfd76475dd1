"""The decision: one immutable value that the proxy renders as a response and `authproxy explain` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from authproxy.errors import DenialCode
from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.rate_limit import RateLimitState
from authproxy.policy.roster import RosterFilter
from authproxy.policy.ws_messages import MessageGrant

__all__ = ["Decision", "ListingFilter"]


@dataclass(frozen=True, slots=True)
class ListingFilter:
    """Under the agentos preset: a family listing answered with only the items the caller may read."""

    family: str  # "agents" | "teams" | "workflows"
    ids: frozenset[str]


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
    listing: ListingFilter | None = None
    roster: RosterFilter | None = None  # GET /config under the agentos preset: summaries cut to read scopes
    messages: MessageGrant | None = None  # the workflow WebSocket under the agentos preset: per-message check
    params: tuple[tuple[str, str], ...] = field(default=())  # path parameters bound by the route
    rate_limit: RateLimitState | None = None  # the limits that apply to an authenticated request
    # The matched rule's content checks, the caller's ids bound (content/plan.py). Carried out after the
    # gate, it may refuse only on what the request's query, body or named entity holds.
    content: ContentPlan | None = None
