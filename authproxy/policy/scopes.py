"""Scope evaluation with Agno's semantics, compiled once per rule so that evaluate() is set lookups only.

A required scope compiles to the granted strings that satisfy it. `res:action` is satisfied by `res:action`
or `res:*:action`; once the route binds an item id, also by `res:<id>:action`. Like Agno, which reads the
family from the path whatever its mapping table says, a route under `/agents`, `/teams` or `/workflows`
(optionally after `/a2a`) binds the next segment as that family's item id, with or without the preset.
Because only well-formed strings are ever looked up, a granted scope with empty parts or more than three parts
matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from authproxy.policy.listing import ListingFilter
from authproxy.policy.patterns import RoutePattern

__all__ = [
    "AGENTOS_FAMILIES",
    "ScopeParts",
    "ScopeRequirement",
    "ScopeResult",
    "compile_requirement",
    "evaluate",
    "granted_items",
    "is_item_id",
    "parse_scope",
]

AGENTOS_FAMILIES = frozenset({"agents", "teams", "workflows"})
_ALIASES = {"system": "config"}  # AgentOS reads legacy `system:*` scopes as `config:*`
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHITESPACE = re.compile(r"\s")
# An item id named in a body or a tool argument stands in a scope (`agents:<id>:run`), and scopes travel
# space-separated in tokens and in the challenge's `scope=`: no ':', whitespace or control character may
# split the scope, widen it, or break the header that names it.
_ITEM_ID = re.compile(r"[^\x00-\x20\x7f-\x9f:\s]+")


class ScopeParts(NamedTuple):
    family: str
    item: str | None  # None for `family:action`; "*" (every item) or an id for `family:item:action`
    action: str


def parse_scope(text: str) -> ScopeParts | None:
    """The one reading of `family:action` and `family:item:action`; None for any other shape (a plain
    scope without ':', more than three parts, an empty part), which names no family's action."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or "" in parts:
        return None
    return ScopeParts(parts[0], parts[1] if len(parts) == 3 else None, parts[-1])


def granted_items(granted: Iterable[str], family: str, action: str) -> frozenset[str] | None:
    """Which of `family`'s items `granted` allows `action` on: None for every item (`family:action` or
    `family:*:action`), else the ids named by `family:<id>:action` (possibly none)."""
    ids = set()
    for scope in granted:
        parts = parse_scope(scope)
        if parts is None or parts.family != family or parts.action != action:
            continue
        if parts.item is None or parts.item == "*":
            return None
        ids.add(parts.item)
    return frozenset(ids)


def is_item_id(value: object) -> bool:
    """Whether `value` can name one item in a per-item scope."""
    return isinstance(value, str) and _ITEM_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class _Need:
    written: str
    satisfied_by: frozenset[str]  # granted scopes that satisfy it whatever the item
    slot: int  # index into the route's params of the bound item id; -1 when none is bound
    per_item: tuple[tuple[str, str], ...]  # ("agents:", ":run"): prefix and suffix around the id
    template: tuple[str, str] | None  # text before and after a `{param}` in `written`

    def bound(self, params: tuple[tuple[str, str], ...]) -> str:
        if self.template is None:
            return self.written
        return self.template[0] + params[self.slot][1] + self.template[1]


@dataclass(frozen=True, slots=True)
class ScopeRequirement:
    scopes: tuple[str, ...]  # as written in the policy
    needs: tuple[_Need, ...]
    listing: tuple[str, str] | None  # (family, action) of a filterable AgentOS listing route

    def scopes_for(self, params: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
        """The required scopes as written, with `{param}` ids bound from the request."""
        if all(n.template is None for n in self.needs):
            return self.scopes
        return tuple(n.bound(params) for n in self.needs)


@dataclass(frozen=True, slots=True)
class ScopeResult:
    allowed: bool
    missing: tuple[str, ...]  # required scopes (ids bound) not satisfied
    listing: ListingFilter | None = None


_ALLOWED = ScopeResult(True, ())


@dataclass(frozen=True, slots=True)
class _ItemPath:
    """Where a route names one item of an AgentOS family: /agents/<id>/... or /a2a/agents/<id>/..."""

    family: str
    index: int  # of the id segment
    literal: str | None  # the id itself when the route spells it out; None for a {param} or '*'


def compile_requirement(
    scopes: tuple[str, ...], pattern: RoutePattern, *, preset: str | None
) -> ScopeRequirement:
    """Compile a rule's scope list; raise ValueError for a malformed scope or an unbound `{param}`."""
    item = _item_path(pattern)
    needs = tuple(_compile_need(scope, pattern, preset, item) for scope in scopes)
    return ScopeRequirement(scopes, needs, _listing(scopes, pattern, preset))


def _item_path(pattern: RoutePattern) -> _ItemPath | None:
    """The family whose item id the path binds, as Agno reads it: `^/(a2a/)?(agents|teams|workflows)/<id>`."""
    s = pattern.segments
    start = 1 if s[:1] == ("a2a",) else 0
    if len(s) < start + 2 or s[start] not in AGENTOS_FAMILIES:
        return None
    family = s[start]
    assert family is not None  # a member of AGENTOS_FAMILIES
    return _ItemPath(family, start + 1, s[start + 1])


def _listing(scopes: tuple[str, ...], pattern: RoutePattern, preset: str | None) -> tuple[str, str] | None:
    s = pattern.segments
    if preset != "agentos" or pattern.tail or len(s) != 1 or s[0] not in AGENTOS_FAMILIES or not scopes:
        return None
    parts = parse_scope(scopes[0])  # Agno takes the family and action from the first required scope
    if parts is None or parts.item is not None or parts.family != s[0]:
        return None
    return parts.family, parts.action


def _required(scope: str) -> ScopeParts | None:
    """A scope a rule requires, checked; None for a plain scope (no ':'), satisfied by itself alone."""
    if not scope:
        raise ValueError("empty scope")
    if _WHITESPACE.search(scope) is not None:
        raise ValueError(f"scope {scope!r} contains whitespace (list scopes as separate items)")
    if ":" not in scope:
        if "{" in scope or "}" in scope:
            raise ValueError(f"scope {scope!r}: a {{param}} may only be the id, as in res:{{param}}:action")
        return None
    parts = parse_scope(scope)
    if parts is None:
        if scope.count(":") > 2:
            raise ValueError(f"scope {scope!r} has more than 3 ':'-separated parts")
        raise ValueError(f"scope {scope!r} has an empty part")
    if any("{" in part or "}" in part for part in (parts.family, parts.action)):
        raise ValueError(f"scope {scope!r}: a {{param}} may only be the id, as in res:{{param}}:action")
    return parts


def _compile_need(
    scope: str, pattern: RoutePattern, preset: str | None, item_path: _ItemPath | None
) -> _Need:
    parts = _required(scope)
    if parts is None:
        return _Need(scope, frozenset({scope}), -1, (), None)
    resource, action = parts.family, parts.action
    names = _resource_names(resource, preset)
    everywhere = frozenset(s for r in names for s in (f"{r}:{action}", f"{r}:*:{action}"))
    per_item = tuple((f"{r}:", f":{action}") for r in names)
    if parts.item is None:
        if item_path is None or names[0] != item_path.family:
            return _Need(scope, everywhere, -1, (), None)
        if item_path.literal is not None:  # the route is about one named item: its per-item grant is fixed
            return _Need(
                scope, everywhere | {f"{r}:{item_path.literal}:{action}" for r in names}, -1, (), None
            )
        return _Need(scope, everywhere, _family_slot(pattern, item_path), per_item, None)
    item = parts.item
    if item == "*":
        return _Need(scope, everywhere, -1, (), None)
    param = _PLACEHOLDER.fullmatch(item)
    if param is None:
        if "{" in item or "}" in item:
            raise ValueError(f"scope {scope!r}: {item!r} is not a {{param}} name")
        return _Need(scope, everywhere | {f"{r}:{item}:{action}" for r in names}, -1, (), None)
    slot = _param_slot(pattern, param.group(1), scope)
    return _Need(scope, everywhere, slot, per_item, (f"{resource}:", f":{action}"))


def _resource_names(resource: str, preset: str | None) -> tuple[str, ...]:
    """The resource, then the legacy names that mean the same under the preset."""
    if preset != "agentos":
        return (resource,)
    current = _ALIASES.get(resource, resource)
    return (current, *(old for old, new in _ALIASES.items() if new == current))


def _named_params(pattern: RoutePattern) -> list[str]:
    return [n for n in pattern.param_names if n is not None]


def _param_slot(pattern: RoutePattern, name: str, scope: str) -> int:
    names = _named_params(pattern)
    if name not in names:
        raise ValueError(f"scope {scope!r} names {{{name}}}, which the route's path does not bind")
    return names.index(name)


def _family_slot(pattern: RoutePattern, item_path: _ItemPath) -> int:
    name = pattern.param_names[item_path.index]
    if name is None:
        # The id must reach evaluate() as a bound parameter; an anonymous '*' is never bound.
        family = item_path.family
        raise ValueError(
            f"per-{family} scopes are checked against the segment after /{family}: "
            f"name it, e.g. /{family}/{{id}} instead of /{family}/*"
        )
    return _named_params(pattern).index(name)


def evaluate(
    req: ScopeRequirement,
    granted: frozenset[str],
    params: tuple[tuple[str, str], ...],
    *,
    admin_scope: str | None,
    method: str,
) -> ScopeResult:
    """All-of evaluation of a route's requirement against the caller's scopes."""
    if admin_scope is not None and admin_scope in granted:
        return _ALLOWED
    missing: list[str] | None = None
    for need in req.needs:
        if not granted.isdisjoint(need.satisfied_by):
            continue
        if need.slot >= 0 and _holds_item(need, granted, params[need.slot][1]):
            continue
        if missing is None:
            missing = []
        missing.append(need.bound(params))
    if missing is None:
        return _ALLOWED
    if req.listing is not None and method == "GET" and missing == [req.scopes[0]]:
        return _filtered_listing(req.listing, granted, tuple(missing))
    return ScopeResult(False, tuple(missing))


def _holds_item(need: _Need, granted: frozenset[str], item: str) -> bool:
    if ":" in item:
        return False  # no well-formed per-item scope has ':' in its id
    for prefix, suffix in need.per_item:  # noqa: SIM110 - hot path: a plain loop beats any(<generator>)
        if prefix + item + suffix in granted:
            return True
    return False


def _filtered_listing(
    listing: tuple[str, str], granted: frozenset[str], missing: tuple[str, ...]
) -> ScopeResult:
    """Per-item read scopes only: allowed, and the listing is filtered to those items (Agno 3.1)."""
    family, action = listing
    ids = granted_items(granted, family, action)
    if not ids:  # None cannot come here (a family-wide grant satisfies the route), and would refuse too
        return ScopeResult(False, missing)
    return ScopeResult(True, (), ListingFilter(family, ids))
