"""The compiled trie against a slow, obviously-correct reference matcher, on random policies.

The reference reads the route keys as written, tries every rule on every path with a plain recursive
matcher, and ranks candidates as PRODUCT.md says: more literals, then more single wildcards, then a path
end over "**", then how the rule admits the method (named > HEAD-via-GET > "*"). Paths are enumerated
exhaustively over the patterns' alphabet plus a value no pattern names, so tie detection is checked both
ways: a table that builds is never ambiguous, and a refused one really is.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from authproxy.config.model import PublicRule, RouteRule
from authproxy.errors import ConfigError
from authproxy.policy.table import RouteMatch, RouteTable

LITERALS = ("a", "b")
FRESH = "zz"  # a segment no pattern names
NAMED_METHODS = (None, "GET", "HEAD", "POST", "GET,HEAD", "GET,POST", "HEAD,POST")
METHODS = ("GET", "HEAD", "POST", "DELETE")  # DELETE: a method no rule names
MAX_SEGMENTS = 3
PATHS = [p for n in range(MAX_SEGMENTS + 2) for p in itertools.product((*LITERALS, FRESH), repeat=n)]

Written = tuple[str, bool]  # (route key, public?)


@st.composite
def rule_keys(draw: st.DrawFn) -> str:
    count = draw(st.integers(0, MAX_SEGMENTS))
    parts = []
    for i in range(count):
        kind = draw(st.sampled_from(["literal", "literal", "star", "param"]))
        if kind == "literal":
            parts.append(draw(st.sampled_from(LITERALS)))
        else:
            parts.append("*" if kind == "star" else f"{{p{i}}}")
    if draw(st.booleans()):
        parts.append("**")
    methods = draw(st.sampled_from(NAMED_METHODS))
    path = "/" + "/".join(parts)
    return path if methods is None else f"{methods} {path}"


policies = st.lists(st.tuples(rule_keys(), st.booleans()), min_size=1, max_size=10)


def reference_match(parts: list[str], path: tuple[str, ...]) -> list[tuple[str, str]] | None:
    """Bound params if the written path parts match `path`, else None."""
    if not parts:
        return [] if not path else None
    head, rest = parts[0], parts[1:]
    if head == "**":
        return []
    if not path:
        return None
    if head != "*" and not head.startswith("{") and head != path[0]:
        return None
    bound = reference_match(rest, path[1:])
    if bound is None:
        return None
    return [(head[1:-1], path[0]), *bound] if head.startswith("{") else bound


def reference_rank(key: str, method: str) -> tuple[int, ...] | None:
    written_methods, _, path = key.rpartition(" ")
    methods = set(written_methods.split(",")) if written_methods else None
    if methods is None:
        how = 0
    elif method in methods:
        how = 2
    elif method == "HEAD" and "GET" in methods:
        how = 1
    else:
        return None
    parts = [p for p in path.split("/") if p]
    literals = sum(1 for p in parts if p not in ("*", "**") and not p.startswith("{"))
    singles = sum(1 for p in parts if p == "*" or p.startswith("{"))
    return (literals, singles, 0 if parts[-1:] == ["**"] else 1, how)


def reference_best(policy: list[Written], method: str, path: tuple[str, ...]) -> list[RouteMatch]:
    """Every candidate of the highest rank (more than one means the policy is ambiguous there)."""
    ranked: list[tuple[tuple[int, ...], RouteMatch]] = []
    for key, is_public in policy:
        rank = reference_rank(key, method)
        bound = reference_match([p for p in key.rpartition(" ")[2].split("/") if p], path)
        if rank is not None and bound is not None:
            ranked.append((rank, RouteMatch(key, is_public, None, tuple(bound))))
    if not ranked:
        return []
    top = max(rank for rank, _ in ranked)
    return [found for rank, found in ranked if rank == top]


def build(policy: list[Written]) -> RouteTable:
    public = [PublicRule(key, "p.yaml", n) for n, (key, is_public) in enumerate(policy) if is_public]
    routes = [RouteRule(key, (), "p.yaml", n) for n, (key, is_public) in enumerate(policy) if not is_public]
    return RouteTable.build(public, routes, preset=None)


def ambiguous(policy: list[Written]) -> bool:
    return any(len(reference_best(policy, m, p)) > 1 for m in METHODS for p in PATHS)


def agrees(table: RouteTable, policy: list[Written]) -> None:
    for method in METHODS:
        for path in PATHS:
            best = reference_best(policy, method, path)
            assert len(best) <= 1, (method, path, best)
            found = table.match(method, path)
            got = None if found is None else found._replace(requirement=None)
            assert got == (best[0] if best else None), (method, path)


@settings(max_examples=150, deadline=None)
@given(policies)
def test_compiled_table_agrees_with_reference_matcher(policy: list[Written]) -> None:
    # Drop the rules a reported tie names until the policy builds; the survivors must agree everywhere.
    while True:
        try:
            table = build(policy)
        except ConfigError as refused:
            lines = {p.line for p in refused.problems}
            policy = [w for n, w in enumerate(policy) if n not in lines]
            continue
        agrees(table, policy)
        return


@settings(max_examples=150, deadline=None)
@given(policies)
def test_table_is_refused_exactly_when_the_policy_is_ambiguous(policy: list[Written]) -> None:
    try:
        build(policy)
    except ConfigError:
        assert ambiguous(policy)
    else:
        assert not ambiguous(policy)
