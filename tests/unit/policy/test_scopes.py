"""Scope semantics as in Agno: all-of; family-wide, wildcard and per-item grants; admin; alias; listings."""

from __future__ import annotations

import pytest

from authproxy.policy.listing import ListingFilter
from authproxy.policy.patterns import parse_pattern
from authproxy.policy.scopes import (
    ScopeParts,
    ScopeRequirement,
    ScopeResult,
    compile_requirement,
    evaluate,
    granted_items,
    parse_scope,
)

ADMIN = "agent_os:admin"


def requirement(key: str, *scopes: str, preset: str | None = None) -> ScopeRequirement:
    return compile_requirement(scopes, parse_pattern(key), preset=preset)


def check(
    req: ScopeRequirement,
    granted: set[str],
    params: dict[str, str] | None = None,
    *,
    method: str = "GET",
    admin_scope: str | None = ADMIN,
) -> ScopeResult:
    bound = tuple((params or {}).items())
    return evaluate(req, frozenset(granted), bound, admin_scope=admin_scope, method=method)


EXPORT = "POST /reports/{rid}/export"
RUNS = "POST /agents/{agent_id}/runs"
SESSIONS = "GET /agents/{agent_id}/sessions"

# (route key, required scopes, preset, path params, granted scopes, allowed?)
SEMANTICS = [
    # family-wide and wildcard grants satisfy an unbound requirement; a per-item grant does not
    ("GET /reports", ("reports:read",), None, {}, {"reports:read"}, True),
    ("GET /reports", ("reports:read",), None, {}, {"reports:*:read"}, True),
    ("GET /reports", ("reports:read",), None, {}, {"reports:r1:read"}, False),
    ("GET /reports", ("reports:read",), None, {}, {"reports:write"}, False),
    ("GET /reports", ("reports:read",), None, {}, {"other:read"}, False),
    ("GET /reports", ("reports:read",), None, {}, set(), False),
    # all-of
    ("GET /x", ("a:read", "b:read"), None, {}, {"a:read", "b:read"}, True),
    ("GET /x", ("a:read", "b:read"), None, {}, {"a:read"}, False),
    # an empty list needs only a valid token
    ("GET /x", (), None, {}, set(), True),
    # admin passes everything, but only when configured
    ("GET /x", ("a:read",), None, {}, {ADMIN}, True),
    # a {param} in the scope binds the route's parameter
    (
        "POST /reports/{rid}/export",
        ("reports:{rid}:export",),
        None,
        {"rid": "r1"},
        {"reports:r1:export"},
        True,
    ),
    (
        "POST /reports/{rid}/export",
        ("reports:{rid}:export",),
        None,
        {"rid": "r2"},
        {"reports:r1:export"},
        False,
    ),
    (EXPORT, ("reports:{rid}:export",), None, {"rid": "r2"}, {"reports:export"}, True),
    (
        "POST /reports/{rid}/export",
        ("reports:{rid}:export",),
        None,
        {"rid": "r2"},
        {"reports:*:export"},
        True,
    ),
    (
        "POST /reports/{rid}/export",
        ("reports:{rid}:export",),
        None,
        {"rid": "r1"},
        {"reports:r1:read"},
        False,
    ),
    # a literal id in the requirement is that item
    ("GET /x", ("reports:r1:read",), None, {}, {"reports:r1:read"}, True),
    ("GET /x", ("reports:r1:read",), None, {}, {"reports:read"}, True),
    ("GET /x", ("reports:r1:read",), None, {}, {"reports:*:read"}, True),
    ("GET /x", ("reports:r1:read",), None, {}, {"reports:r2:read"}, False),
    # a wildcard id in the requirement needs the wildcard (or family-wide) power
    ("GET /x", ("reports:*:read",), None, {}, {"reports:*:read"}, True),
    ("GET /x", ("reports:*:read",), None, {}, {"reports:read"}, True),
    ("GET /x", ("reports:*:read",), None, {}, {"reports:r1:read"}, False),
    # one-part scopes (OAuth scopes, realm roles) match exactly
    ("GET /x", ("reports",), None, {}, {"reports"}, True),
    ("GET /x", ("reports",), None, {}, {"reports:read"}, False),
    # without the preset, `system` is not `config`; the family's id is bound from the path all the same
    ("GET /config", ("config:read",), None, {}, {"system:read"}, False),
    (RUNS, ("agents:run",), None, {"agent_id": "a1"}, {"agents:a1:run"}, True),
    (RUNS, ("agents:run",), None, {"agent_id": "a2"}, {"agents:a1:run"}, False),
    (RUNS, ("agents:run",), None, {"agent_id": "a1"}, {"agents:a1:read"}, False),
    (RUNS, ("agents:{agent_id}:run",), None, {"agent_id": "a1"}, {"agents:a1:run"}, True),
    (RUNS, ("agents:{agent_id}:run",), None, {"agent_id": "a2"}, {"agents:a1:run"}, False),
    ("POST /teams/{tid}/runs", ("teams:run",), None, {"tid": "t1"}, {"teams:t1:run"}, True),
    ("GET /workflows/{wid}", ("workflows:read",), None, {"wid": "w1"}, {"workflows:w1:read"}, True),
    # ... also after /a2a, and for an id the route spells out
    ("POST /a2a/agents/{aid}/v1/message:send", ("agents:run",), None, {"aid": "a1"}, {"agents:a1:run"}, True),
    (
        "POST /a2a/agents/{aid}/v1/message:send",
        ("agents:run",),
        None,
        {"aid": "a2"},
        {"agents:a1:run"},
        False,
    ),
    ("POST /agents/a1/runs", ("agents:run",), None, {}, {"agents:a1:run"}, True),
    ("POST /agents/a1/runs", ("agents:run",), None, {}, {"agents:a2:run"}, False),
    # ... but only directly after the family (or /a2a/<family>): /x/agents/{id} is no AgentOS item path
    ("POST /x/agents/{aid}/runs", ("agents:run",), None, {"aid": "a1"}, {"agents:a1:run"}, False),
    ("POST /agents", ("agents:run",), None, {}, {"agents:a1:run"}, False),
    # agentos: the family's id is bound from the path
    (RUNS, ("agents:run",), "agentos", {"agent_id": "a1"}, {"agents:run"}, True),
    (RUNS, ("agents:run",), "agentos", {"agent_id": "a1"}, {"agents:*:run"}, True),
    (RUNS, ("agents:run",), "agentos", {"agent_id": "a1"}, {"agents:a1:run"}, True),
    (
        "POST /agents/{agent_id}/runs",
        ("agents:run",),
        "agentos",
        {"agent_id": "a2"},
        {"agents:a1:run"},
        False,
    ),
    (
        "POST /agents/{agent_id}/runs",
        ("agents:run",),
        "agentos",
        {"agent_id": "a1"},
        {"agents:a1:read"},
        False,
    ),
    (RUNS, ("agents:run",), "agentos", {"agent_id": "a1"}, {"teams:a1:run"}, False),
    ("POST /teams/{team_id}/runs", ("teams:run",), "agentos", {"team_id": "t1"}, {"teams:t1:run"}, True),
    ("GET /workflows/{wid}", ("workflows:read",), "agentos", {"wid": "w1"}, {"workflows:w1:read"}, True),
    ("GET /workflows/{wid}", ("workflows:read",), "agentos", {"wid": "w1"}, {"workflows:w2:read"}, False),
    # agentos: a scope of another family on an /agents/{id} route is checked as written
    (
        "GET /agents/{agent_id}/sessions",
        ("sessions:read",),
        "agentos",
        {"agent_id": "a1"},
        {"sessions:read"},
        True,
    ),
    (
        "GET /agents/{agent_id}/sessions",
        ("sessions:read",),
        "agentos",
        {"agent_id": "a1"},
        {"agents:a1:read", "sessions:a1:read"},
        False,
    ),
    # agentos: the family is only bound under the first segment
    ("GET /knowledge/agents/{id}", ("agents:read",), "agentos", {"id": "a1"}, {"agents:a1:read"}, False),
    # agentos: legacy `system` reads as `config`, granted or required
    ("GET /config", ("config:read",), "agentos", {}, {"system:read"}, True),
    ("GET /config", ("config:read",), "agentos", {}, {"system:*:read"}, True),
    ("GET /config", ("system:read",), "agentos", {}, {"config:read"}, True),
    ("GET /config", ("config:read",), "agentos", {}, {"system:write"}, False),
    # malformed granted scopes match nothing, even where the path id would line them up
    (
        "POST /agents/{agent_id}/runs",
        ("agents:run",),
        "agentos",
        {"agent_id": "a:b"},
        {"agents:a:b:run"},
        False,
    ),
    ("GET /x", ("a:read",), None, {}, {"a:read:", ":a:read", "a::read", "a:read:x:y"}, False),
]


@pytest.mark.parametrize(("key", "scopes", "preset", "params", "granted", "allowed"), SEMANTICS)
def test_scope_semantics_table(
    key: str,
    scopes: tuple[str, ...],
    preset: str | None,
    params: dict[str, str],
    granted: set[str],
    allowed: bool,
) -> None:
    result = check(requirement(key, *scopes, preset=preset), granted, params, method=key.split()[0])
    assert result.allowed is allowed
    assert (result.missing == ()) is allowed
    assert result.listing is None


def test_admin_scope_is_not_assumed_when_unconfigured() -> None:
    req = requirement("GET /x", "a:read")
    assert not check(req, {ADMIN}, admin_scope=None).allowed
    assert check(req, {"root"}, admin_scope="root").allowed


def test_missing_lists_unsatisfied_scopes_in_order_with_ids_bound() -> None:
    req = requirement("POST /reports/{rid}/export", "a:read", "reports:{rid}:export", "b:read")
    result = check(req, {"a:read"}, {"rid": "r9"}, method="POST")
    assert result == ScopeResult(False, ("reports:r9:export", "b:read"))


def test_scopes_for_binds_params_and_keeps_others_as_written() -> None:
    req = requirement("POST /agents/{agent_id}/runs", "agents:run", "x:{agent_id}:y", preset="agentos")
    assert req.scopes_for((("agent_id", "a1"),)) == ("agents:run", "x:a1:y")
    plain = requirement("GET /x", "a:read")
    assert plain.scopes_for(()) is plain.scopes


@pytest.mark.parametrize("preset", ["agentos", None])
@pytest.mark.parametrize("key", ["POST /agents/*/runs", "POST /a2a/agents/*/v1/message:send"])
def test_anonymous_family_wildcard_is_refused_with_or_without_preset(key: str, preset: str | None) -> None:
    with pytest.raises(ValueError, match=r"name it, e.g. /agents/\{id\}"):
        requirement(key, "agents:run", preset=preset)


def test_anonymous_family_wildcard_is_fine_when_nothing_binds() -> None:
    req = requirement("POST /agents/*/runs", "sessions:write", preset="agentos")
    assert req.scopes_for(()) == ("sessions:write",)
    assert check(req, {"sessions:write"}).allowed
    assert check(req, {"sessions:*:write"}).allowed
    assert check(req, {"agents:a1:run", "sessions:a1:write"}) == ScopeResult(False, ("sessions:write",))


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("", "empty scope"),
        ("agents: read", "whitespace"),
        ("agents:read ", "whitespace"),
        ("a\tb", "whitespace"),
        ("a:b:c:d", "more than 3"),
        ("agents::read", "empty part"),
        (":read", "empty part"),
        ("agents:", "empty part"),
        ("agents:{nope}:run", "does not bind"),
        ("{agent_id}:run", "may only be the id"),
        ("{agent_id}", "may only be the id"),
        ("agents:run:{agent_id}", "may only be the id"),
        ("agents:{agent_id:run", "is not a {param} name"),
        ("agents:{1x}:run", "is not a {param} name"),
    ],
)
def test_malformed_required_scope_is_refused(scope: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        requirement("POST /agents/{agent_id}/runs", scope)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("agents:read", ScopeParts("agents", None, "read")),
        ("agents:*:run", ScopeParts("agents", "*", "run")),
        ("agents:a1:run", ScopeParts("agents", "a1", "run")),
        ("admin", None),
        ("a:b:c:d", None),
        ("agents::run", None),
        (":read", None),
        ("agents:", None),
    ],
)
def test_parse_scope_reads_family_item_and_action(text: str, parts: ScopeParts | None) -> None:
    assert parse_scope(text) == parts


@pytest.mark.parametrize(
    ("granted", "ids"),
    [
        ({"agents:read"}, None),
        ({"agents:a1:read", "agents:*:read"}, None),
        ({"agents:a1:read", "agents:a2:read", "agents:a3:run", "teams:t1:read"}, frozenset({"a1", "a2"})),
        ({"agents::read", "agents:a:b:read", "agents", "agents:read:x"}, frozenset()),
        (set(), frozenset()),
    ],
)
def test_granted_items_are_the_family_wide_grant_or_the_named_ids(
    granted: set[str], ids: frozenset[str] | None
) -> None:
    assert granted_items(granted, "agents", "read") == ids


LISTING = "GET /agents"


def test_listing_with_per_item_reads_is_filtered() -> None:
    req = requirement(LISTING, "agents:read", preset="agentos")
    result = check(req, {"agents:a1:read", "agents:a2:read", "agents:a3:run", "teams:t1:read"})
    assert result == ScopeResult(True, (), ListingFilter("agents", frozenset({"a1", "a2"})))


@pytest.mark.parametrize("family", ["teams", "workflows"])
def test_listing_of_teams_and_workflows_is_filtered(family: str) -> None:
    req = requirement(f"GET /{family}", f"{family}:read", preset="agentos")
    result = check(req, {f"{family}:x:read"})
    assert result.listing == ListingFilter(family, frozenset({"x"}))


def test_listing_without_any_read_scope_of_the_family_is_refused() -> None:
    req = requirement(LISTING, "agents:read", preset="agentos")
    assert check(req, {"agents:a1:run", "teams:t1:read"}) == ScopeResult(False, ("agents:read",))
    assert not check(req, set()).allowed


def test_listing_ignores_malformed_per_item_scopes() -> None:
    req = requirement(LISTING, "agents:read", preset="agentos")
    assert not check(req, {"agents::read", "agents:a:b:read", "agents:a1:read:x"}).allowed


@pytest.mark.parametrize("granted", [{"agents:read"}, {"agents:*:read"}, {ADMIN}])
def test_listing_with_full_read_is_not_filtered(granted: set[str]) -> None:
    req = requirement(LISTING, "agents:read", preset="agentos")
    assert check(req, granted) == ScopeResult(True, ())


def test_listing_filter_applies_to_get_only() -> None:
    req = requirement("* /agents", "agents:read", preset="agentos")
    assert not check(req, {"agents:a1:read"}, method="HEAD").allowed
    assert not check(req, {"agents:a1:read"}, method="POST").allowed


def test_listing_filter_needs_the_preset() -> None:
    req = requirement(LISTING, "agents:read")
    assert not check(req, {"agents:a1:read"}).allowed


def test_listing_with_another_missing_scope_is_refused() -> None:
    req = requirement(LISTING, "agents:read", "audit:read", preset="agentos")
    assert check(req, {"agents:a1:read"}) == ScopeResult(False, ("agents:read", "audit:read"))


@pytest.mark.parametrize(
    ("key", "scopes"),
    [
        ("GET /agents/{agent_id}", ("agents:read",)),  # an item, not the listing
        ("GET /agents/**", ("agents:read",)),
        ("GET /agents", ("knowledge:read",)),  # a foreign scope is never waved through
        ("GET /agents", ("agents:a1:read",)),
        ("GET /sessions", ("sessions:read",)),
    ],
)
def test_routes_that_are_not_family_listings_are_not_filtered(key: str, scopes: tuple[str, ...]) -> None:
    req = requirement(key, *scopes, preset="agentos")
    result = check(req, {"agents:a2:read", "sessions:s1:read", "knowledge:k1:read"}, {"agent_id": "a1"})
    assert not result.allowed
    assert result.listing is None
