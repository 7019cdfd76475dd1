"""Which agents, teams and workflows a caller may see in AgentOS's `GET /config`, as Agno 3.1 decides it.

Agno admits `/config` on `config:read`, then cuts the agents/teams/workflows summaries to what the caller
may *read* (`afilter_resources_by_access(..., action="read")`): the admin scope, `<family>:read` or
`<family>:*:read` shows the whole family, `<family>:<id>:read` that one item, anything else nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from authproxy.policy.reads import Reads
from authproxy.policy.scopes import granted_items

__all__ = ["ROSTER_FAMILIES", "RosterFilter", "roster_filter"]

ROSTER_FAMILIES = ("agents", "teams", "workflows")
_ACTION = "read"


@dataclass(frozen=True, slots=True)
class RosterFilter:
    """The families the caller sees only in part, each with the ids it may read (possibly none).

    A family not named here is shown whole. The filter is built only when some family is cut.
    """

    limited: tuple[tuple[str, frozenset[str]], ...]

    label: ClassVar[str] = "config filter"
    reads: ClassVar[Reads] = Reads.ANSWER

    def ids(self, family: str) -> frozenset[str] | None:
        """The ids of `family` the caller may see; None when it sees every item."""
        for name, ids in self.limited:
            if name == family:
                return ids
        return None

    def describe(self) -> str:
        return "; ".join(f"{family}: {' '.join(sorted(ids)) or '(nothing)'}" for family, ids in self.limited)


def roster_filter(granted: Iterable[str], admin_scope: str | None) -> RosterFilter | None:
    """The caller's roster filter, or None when every family is visible whole."""
    scopes = frozenset(granted)
    if admin_scope is not None and admin_scope in scopes:
        return None
    limited = tuple(
        (family, ids)
        for family in ROSTER_FAMILIES
        if (ids := granted_items(scopes, family, _ACTION)) is not None
    )
    return RosterFilter(limited) if limited else None
