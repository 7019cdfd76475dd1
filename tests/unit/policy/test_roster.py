"""The /config roster filter against Agno 3.1.10's own decision (get_accessible_resource_ids, action read)."""

from __future__ import annotations

import pytest

from authproxy.policy.agentos_content import preset_routes, preset_stage
from authproxy.policy.roster import ROSTER_FAMILIES, RosterFilter, roster_filter
from authproxy.policy.ws_messages import MessageGrant

ADMIN = "agent_os:admin"
ITEMS = {"agents": {"a1", "a2", "a3"}, "teams": {"t1"}, "workflows": {"w1", "w2"}}
GRANTS = [
    [ADMIN],
    ["config:read"],
    ["config:read", "agents:a1:read"],
    ["agents:a1:read", "agents:a3:read", "teams:read"],
    ["agents:*:read", "workflows:w2:read"],
    ["agents:a1:run", "agents:run", "workflows:*:run"],  # run grants never show an item
    ["agents:a1:read:extra", "agents:*:*", "teams:t1:write", "agents:read:a1"],
    ["workflows:w1:read", "workflows:w1:read", "system:read"],
    [],
]


def visible(roster: RosterFilter | None, family: str) -> set[str]:
    ids = None if roster is None else roster.ids(family)
    return set(ITEMS[family]) if ids is None else ITEMS[family] & ids


@pytest.mark.agentos
@pytest.mark.parametrize("granted", GRANTS, ids=[" ".join(g) or "none" for g in GRANTS])
def test_roster_shows_what_agno_shows(granted: list[str]) -> None:
    from agno.os.scopes import get_accessible_resource_ids

    roster = roster_filter(granted, ADMIN)
    for family in ROSTER_FAMILIES:
        agno = get_accessible_resource_ids(granted, family, admin_scope=ADMIN, action="read")
        expected = set(ITEMS[family]) if "*" in agno else ITEMS[family] & agno
        assert visible(roster, family) == expected, family


def test_whole_families_need_no_filter() -> None:
    assert roster_filter([ADMIN], ADMIN) is None
    assert roster_filter(["agents:read", "teams:*:read", "workflows:read"], ADMIN) is None


def test_only_the_cut_families_are_named() -> None:
    roster = roster_filter(["agents:read", "teams:t1:read"], ADMIN)
    assert roster == RosterFilter((("teams", frozenset({"t1"})), ("workflows", frozenset())))
    assert roster.describe() == "teams: t1; workflows: (nothing)"


def test_another_admin_scope_is_an_ordinary_scope() -> None:
    roster = roster_filter([ADMIN], "root")
    assert roster is not None and roster.ids("agents") == frozenset()


@pytest.mark.parametrize(
    ("preset", "method", "route", "roster", "grant"),
    [
        ("agentos", "GET", "GET /config", True, False),
        ("agentos", "GET", "GET  /config/", True, False),  # a user's override, spelled its own way
        ("agentos", "HEAD", "GET /config", False, False),  # no body to cut
        ("agentos", "GET", "GET /workflows/ws", False, True),
        ("agentos", "GET", "GET /agents", False, False),
        (None, "GET", "GET /config", False, False),  # a plain policy inspects nothing
        ("agentos", "GET", None, False, False),
    ],
)
def test_preset_stages_attach_only_to_their_routes(
    preset: str | None, method: str, route: str | None, roster: bool, grant: bool
) -> None:
    kind = preset_routes(preset, [route]).get(route) if route is not None else None
    got = preset_stage(kind, method, ["agents:a1:read"], ADMIN, None) if kind is not None else None
    assert (isinstance(got, RosterFilter), isinstance(got, MessageGrant)) == (roster, grant)
