"""What the agentos preset checks beyond the request line, route by route: the parts of Agno's RBAC that
read the response (`GET /config`) or each WebSocket message (`GET /workflows/ws`).

The gate asks `content_checks` once a request is allowed; the answer rides on the Decision, so `explain`
shows it and the proxy applies it. Only these routes pay for it; every other route streams untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from authproxy.policy.patterns import parse_pattern
from authproxy.policy.roster import RosterFilter, roster_filter
from authproxy.policy.ws_messages import MessageGrant, workflow_grant

__all__ = ["CONFIG_ROUTE", "WORKFLOW_SOCKET_ROUTE", "content_checks"]

CONFIG_ROUTE: Final = "GET /config"  # answered with the agents/teams/workflows the caller may read
WORKFLOW_SOCKET_ROUTE: Final = "GET /workflows/ws"  # each message authorized on its workflow id
_NOTHING: tuple[RosterFilter | None, MessageGrant | None] = (None, None)


def content_checks(
    preset: str | None,
    method: str,
    route: str | None,
    granted: Iterable[str],
    admin_scope: str | None,
    user_id: str | None = None,
) -> tuple[RosterFilter | None, MessageGrant | None]:
    """(roster filter, message grant) for an allowed request on `route` (the rule's key as written).

    GET only: a HEAD held to these GET rules carries no body and no messages to check.
    """
    if preset != "agentos" or method != "GET" or route is None:
        return _NOTHING
    kind = _KINDS.get(route)
    if kind is None:
        kind = _KINDS[route] = _kind_of(route)
    if kind == CONFIG_ROUTE:
        return roster_filter(granted, admin_scope), None
    if kind == WORKFLOW_SOCKET_ROUTE:
        return None, workflow_grant(granted, admin_scope, user_id)
    return _NOTHING


# rule key as written -> the content route it is ("" if none): one dict lookup per request. Bounded by the
# rule keys of the policies loaded in this process.
_KINDS: dict[str, str] = {}


def _kind_of(route: str) -> str:
    """A user rule that overrides the preset's may spell the key its own way ("GET /config/")."""
    canonical = parse_pattern(route).canonical
    return canonical if canonical in (CONFIG_ROUTE, WORKFLOW_SOCKET_ROUTE) else ""
