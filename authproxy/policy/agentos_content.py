"""What the agentos preset checks beyond the request line, route by route: the parts of Agno's RBAC that
read the response (`GET /config`) or each WebSocket message (`GET /workflows/ws`).

`preset_routes` finds, once per policy, which rule keys are these routes (a user rule that overrides the
preset's may spell its key its own way: "GET /config/"); the gate then asks `preset_stage` for an allowed
request on one of them, and the stage rides on the Decision, so `explain` shows it and the proxy applies it.
Only these routes pay for it; every other route streams untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from authproxy.policy.patterns import parse_pattern
from authproxy.policy.roster import RosterFilter, roster_filter
from authproxy.policy.ws_messages import MessageGrant, workflow_grant

__all__ = ["CONFIG_ROUTE", "WORKFLOW_SOCKET_ROUTE", "preset_routes", "preset_stage"]

CONFIG_ROUTE: Final = "GET /config"  # answered with the agents/teams/workflows the caller may read
WORKFLOW_SOCKET_ROUTE: Final = "GET /workflows/ws"  # each message authorized on its workflow id


def preset_routes(preset: str | None, keys: Iterable[str]) -> Mapping[str, str]:
    """Rule key as written -> the preset route it is (CONFIG_ROUTE or WORKFLOW_SOCKET_ROUTE)."""
    if preset != "agentos":
        return {}
    found = {}
    for key in keys:
        canonical = parse_pattern(key).canonical
        if canonical in (CONFIG_ROUTE, WORKFLOW_SOCKET_ROUTE):
            found[key] = canonical
    return found


def preset_stage(
    kind: str, method: str, granted: Iterable[str], admin_scope: str | None, user_id: str | None
) -> RosterFilter | MessageGrant | None:
    """The stage of an allowed request on a preset route. GET only: a HEAD held to these GET rules carries
    no body and no messages to check."""
    if method != "GET":
        return None
    if kind == CONFIG_ROUTE:
        return roster_filter(granted, admin_scope)
    return workflow_grant(granted, admin_scope, user_id)
