"""RouteTable: most specific rule wins whatever the file order; HEAD falls back to GET; ties are refused."""

from __future__ import annotations

import random

import pytest

from authproxy.config.model import PublicRule, RouteRule
from authproxy.errors import ConfigError
from authproxy.policy.table import RouteMatch, RouteTable
from authproxy.policy.target import parse_target

FILE = "policy.yaml"


def route(key: str, *scopes: str, line: int = 1, file: str = FILE) -> RouteRule:
    return RouteRule(key, scopes, file, line)


def public(key: str, line: int = 1) -> PublicRule:
    return PublicRule(key, FILE, line)


def build(*rules: RouteRule | PublicRule, preset: str | None = None) -> RouteTable:
    pub = [r for r in rules if isinstance(r, PublicRule)]
    routes = [r for r in rules if isinstance(r, RouteRule)]
    return RouteTable.build(pub, routes, preset=preset)


def problems(*rules: RouteRule | PublicRule, preset: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(*rules, preset=preset)
    return [str(p) for p in caught.value.problems]


def matched(table: RouteTable, method: str, target: str) -> str | None:
    found = table.match(method, parse_target(target).segments)
    return None if found is None else found.route


SPECIFIC: list[RouteRule | PublicRule] = [
    route("GET /agents", "agents:read"),
    route("GET /agents/{agent_id}", "agents:read"),
    route("GET /agents/{agent_id}/runs/{run_id}", "agents:read"),
    route("GET /agents/special", "admin:read"),
    route("POST /agents/{agent_id}/runs", "agents:run"),
    route("/agents/{agent_id}/runs", "agents:other"),
    route("GET /agents/*/runs/latest", "runs:latest"),
    route("GET /agents/**", "agents:deep"),
    route("GET /**", "anything:read"),
    route("GET /reports/**", "reports:read"),
    route("GET /reports/*/summary/**", "reports:summary"),
    public("GET /health"),
    public("/docs/**"),
]

EXPECTED = [
    ("GET", "/agents", "GET /agents"),
    ("GET", "/agents/", "GET /agents"),
    ("GET", "/agents/a1", "GET /agents/{agent_id}"),
    ("GET", "/agents/a1/", "GET /agents/{agent_id}"),
    ("GET", "/agents/special", "GET /agents/special"),
    ("GET", "/agents/a1/runs/r1", "GET /agents/{agent_id}/runs/{run_id}"),
    ("GET", "/agents/a1/runs/latest", "GET /agents/*/runs/latest"),
    ("GET", "/agents/a1/runs", "/agents/{agent_id}/runs"),
    ("POST", "/agents/a1/runs", "POST /agents/{agent_id}/runs"),
    ("DELETE", "/agents/a1/runs", "/agents/{agent_id}/runs"),
    ("GET", "/agents/a1/x/y", "GET /agents/**"),
    ("GET", "/other/place", "GET /**"),
    ("GET", "/", "GET /**"),
    ("GET", "/reports", "GET /reports/**"),
    ("GET", "/reports/r1/summary", "GET /reports/*/summary/**"),
    ("GET", "/reports/r1/summary/x", "GET /reports/*/summary/**"),
    ("GET", "/reports/r1/detail", "GET /reports/**"),
    ("GET", "/health", "GET /health"),
    ("HEAD", "/health", "GET /health"),
    ("POST", "/health", None),
    ("PUT", "/docs", "/docs/**"),
    ("GET", "/docs/a/b", "/docs/**"),
    ("POST", "/agents", None),
    ("get", "/agents", None),
]


@pytest.mark.parametrize(("method", "target", "expected"), EXPECTED)
def test_most_specific_rule_wins(method: str, target: str, expected: str | None) -> None:
    assert matched(build(*SPECIFIC), method, target) == expected


@pytest.mark.parametrize("seed", range(8))
def test_specificity_order_is_independent_of_file_order(seed: int) -> None:
    rules = list(SPECIFIC)
    random.Random(seed).shuffle(rules)  # noqa: S311 - a reproducible shuffle, not a secret
    table = build(*rules)
    for method, target, expected in EXPECTED:
        assert matched(table, method, target) == expected


def test_params_are_bound_decoded_in_path_order() -> None:
    table = build(route("GET /agents/{agent_id}/runs/{run_id}", "agents:read"))
    found = table.match("GET", parse_target("/agents/caf%C3%A9%20bot/runs/r%2B1").segments)
    assert found is not None
    assert found.params == (("agent_id", "café bot"), ("run_id", "r+1"))
    assert not found.public
    assert found.requirement is not None and found.requirement.scopes == ("agents:read",)


def test_public_match_has_no_requirement() -> None:
    found = build(public("GET /health")).match("GET", ("health",))
    assert found == RouteMatch("GET /health", True, None, ())


def test_match_without_params_reuses_one_value() -> None:
    table = build(route("GET /config", "config:read"))
    assert table.match("GET", ("config",)) is table.match("GET", ("config",))


def test_encoded_literal_matches_its_decoded_form() -> None:
    table = build(route("GET /caf%C3%A9/menu", "x:read"))
    assert matched(table, "GET", "/caf%c3%a9/menu") == "GET /caf%C3%A9/menu"
    assert matched(table, "GET", "/café/menu".replace("é", "%C3%A9")) == "GET /caf%C3%A9/menu"


def test_rule_count_counts_public_and_routes() -> None:
    assert build(*SPECIFIC).rule_count == len(SPECIFIC)
    assert build().rule_count == 0
    assert build().match("GET", ()) is None


def test_head_falls_back_to_get() -> None:
    table = build(route("GET /a", "a:read"), route("POST /a", "a:write"))
    assert matched(table, "HEAD", "/a") == "GET /a"


@pytest.mark.parametrize(
    ("keys", "target", "head_rule"),
    [
        (["GET /a", "HEAD /a"], "/a", "HEAD /a"),
        (["HEAD /a", "GET /a"], "/a", "HEAD /a"),
        (["GET /*/b", "HEAD /a/*"], "/a/b", "HEAD /a/*"),
        (["HEAD /a/*", "GET /*/b"], "/a/b", "HEAD /a/*"),
    ],
)
def test_head_rule_outranks_get_fallback(keys: list[str], target: str, head_rule: str) -> None:
    table = build(*(route(k, line=n) for n, k in enumerate(keys)))
    assert matched(table, "HEAD", target) == head_rule
    assert matched(table, "GET", target) == next(k for k in keys if k.startswith("GET"))


def test_get_fallback_outranks_star_for_head() -> None:
    table = build(route("GET /a"), route("/a"))
    assert matched(table, "HEAD", "/a") == "GET /a"
    assert matched(table, "PUT", "/a") == "/a"


def test_named_method_outranks_star_at_equal_path() -> None:
    table = build(route("* /a/*"), route("POST /*/b"))
    assert matched(table, "POST", "/a/b") == "POST /*/b"
    assert matched(table, "GET", "/a/b") == "* /a/*"


def test_more_literals_outrank_named_methods() -> None:
    table = build(route("POST /a/*"), route("/a/b"))
    assert matched(table, "POST", "/a/b") == "/a/b"


def test_tie_is_refused_with_both_lines_and_an_example_path() -> None:
    found = problems(route("GET /a/*", line=3), route("GET /*/b", line=5))
    assert found == ["policy.yaml:5: patterns 'GET /a/*' (line 3) and 'GET /*/b' (line 5) tie for /a/b"]


def test_tie_settled_by_a_more_specific_rule_is_allowed() -> None:
    table = build(route("GET /a/*", line=3), route("GET /*/b", line=5), route("GET /a/b", line=7))
    assert matched(table, "GET", "/a/b") == "GET /a/b"
    assert matched(table, "GET", "/a/c") == "GET /a/*"
    assert matched(table, "GET", "/c/b") == "GET /*/b"


def test_tail_tie_settled_length_by_length_is_allowed() -> None:
    tied = [route("GET /a/*/**", line=1), route("GET /*/b/**", line=2)]
    build(*tied, route("GET /a/b", line=3), route("GET /a/b/*/**", line=4))
    assert problems(*tied, route("GET /a/b", line=3)) == [
        "policy.yaml:2: patterns 'GET /a/*/**' (line 1) and 'GET /*/b/**' (line 2) tie for /a/b/**"
    ]
    assert len(problems(*tied, route("GET /a/b/*/**", line=4))) == 1


def test_tie_not_settled_for_every_shared_method_is_refused() -> None:
    found = problems(
        route("GET,POST /a/*", line=1), route("GET,POST /*/b", line=2), route("GET /a/b", line=3)
    )
    assert found == [
        "policy.yaml:2: patterns 'GET,POST /a/*' (line 1) and 'GET,POST /*/b' (line 2) tie for /a/b"
    ]


def test_star_rules_tie_unless_a_star_rule_settles_it() -> None:
    assert problems(route("/a/*", line=1), route("/*/b", line=2))
    with pytest.raises(ConfigError):
        build(route("/a/*", line=1), route("/*/b", line=2), route("GET /a/b", line=3))
    build(route("/a/*", line=1), route("/*/b", line=2), route("/a/b", line=3))


PROBES = [
    (m, p)
    for m in ("GET", "HEAD", "POST")
    for p in ("/a/b", "/a/c", "/a/x", "/x/b", "/a/b/c", "/a/x/c", "/x/b/y", "/a/b/c/d", "/a")
]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("GET /a/*", "POST /*/b"),  # methods do not overlap
        ("GET /a/*", "HEAD /*/b"),  # HEAD by fallback ranks below HEAD named
        ("/a/*", "GET /*/b"),  # named outranks *
        ("GET /a/*", "GET /a/**"),  # single wildcard outranks **
        ("GET /a/b", "GET /a/c"),  # no common path
        ("GET /a/*/c", "GET /a/**"),
        ("GET /a/**", "GET /*/b/**"),  # more single wildcards outrank a shorter prefix
        ("GET /a/**", "GET /*/**"),  # more literals first
        ("GET /a/*/**", "GET /*/b"),  # a path end outranks "**" that matches nothing
    ],
)
def test_rules_that_never_tie_are_accepted(a: str, b: str) -> None:
    table = build(route(a, line=1), route(b, line=2))
    assert table.rule_count == 2
    only_a, only_b = build(route(a)), build(route(b))
    for probe in PROBES:  # a path only one rule covers goes to that rule
        alone = {matched(only_a, *probe), matched(only_b, *probe)} - {None}
        if len(alone) == 1:
            assert matched(table, *probe) in alone, probe


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("GET /a/*/**", "GET /*/b/**"),
        ("GET /a/*/c/**", "GET /a/b/*/**"),
        ("GET,HEAD /x/*", "HEAD /*/y"),
        ("GET /a/{x}", "GET /a/*"),
    ],
)
def test_overlapping_rules_of_equal_rank_tie(a: str, b: str) -> None:
    assert len(problems(route(a, line=1), route(b, line=2))) == 1


def test_repeated_rule_is_reported_as_a_repeat() -> None:
    found = problems(route("GET /agents/{id}", line=2), route("GET /agents/{agent_id}/", line=4))
    assert found == ["policy.yaml:4: pattern 'GET /agents/{agent_id}/' repeats 'GET /agents/{id}' (line 2)"]


def test_public_and_route_with_the_same_canonical_tie() -> None:
    found = problems(public("GET /health", line=2), route("GET /health/", "x:read", line=9))
    assert found == ["policy.yaml:9: pattern 'GET /health/' repeats 'GET /health' (line 2)"]


def test_tie_across_files_names_the_other_file() -> None:
    found = problems(
        route("GET /a/*", line=3, file="presets/agentos.yaml"), route("GET /*/b", line=5, file=FILE)
    )
    assert found == [
        "policy.yaml:5: patterns 'GET /a/*' (presets/agentos.yaml:3) and 'GET /*/b' (line 5) tie for /a/b"
    ]


def test_every_problem_is_reported_at_once_with_its_line() -> None:
    found = problems(
        public("get /health", line=1),
        route("GET /a/{id}/{id}", line=2),
        route("GET /b", "bad scope", line=3),
        route("GET /c/{id}", "c:{other}:read", line=4),
        route("GET /d", "", line=5),
        route("GET /x/*", line=6),
        route("GET /*/y", line=7),
        route("GET /fine", "fine:read", line=8),
    )
    assert found == [
        "policy.yaml:1: public route 'get /health': method 'get' must be upper-case: write GET",
        "policy.yaml:2: route 'GET /a/{id}/{id}': parameter {id} appears twice",
        "policy.yaml:3: route 'GET /b': scope 'bad scope' contains whitespace "
        "(list scopes as separate items)",
        "policy.yaml:4: route 'GET /c/{id}': scope 'c:{other}:read' names {other}, which the route's path "
        "does not bind",
        "policy.yaml:5: route 'GET /d': empty scope",
        "policy.yaml:7: patterns 'GET /x/*' (line 6) and 'GET /*/y' (line 7) tie for /x/y",
    ]


def test_preset_binding_error_is_located() -> None:
    found = problems(route("POST /agents/*/runs", "agents:run", line=12), preset="agentos")
    assert found == [
        "policy.yaml:12: route 'POST /agents/*/runs': per-agents scopes are checked against the segment "
        "after /agents: name it, e.g. /agents/{id} instead of /agents/*"
    ]


def test_requirement_is_compiled_with_the_preset() -> None:
    table = build(route("POST /agents/{agent_id}/runs", "agents:run"), preset="agentos")
    found = table.match("POST", ("agents", "a1", "runs"))
    assert found is not None and found.requirement is not None
    assert found.requirement.needs[0].slot == 0
