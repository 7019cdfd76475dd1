"""Scope evaluation with Agno's semantics, compiled once per rule so that evaluate() is set lookups only.

A required scope compiles to the granted strings that satisfy it. `res:action` is satisfied by `res:action`
or `res:*:action`; once the route binds an item id, also by `res:<id>:action`. Because only well-formed
strings are ever looked up, a granted scope with empty parts or more than three parts matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from authproxy.policy.decision import ListingFilter
from authproxy.policy.patterns import RoutePattern

__all__ = ["AGENTOS_FAMILIES", "ScopeRequirement", "ScopeResult", "compile_requirement", "evaluate"]

AGENTOS_FAMILIES = frozenset({"agents", "teams", "workflows"})
_ALIASES = {"system": "config"}  # AgentOS reads legacy `system:*` scopes as `config:*`
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHITESPACE = re.compile(r"\s")


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


def compile_requirement(
    scopes: tuple[str, ...], pattern: RoutePattern, *, preset: str | None
) -> ScopeRequirement:
    """Compile a rule's scope list; raise ValueError for a malformed scope or an unbound `{param}`."""
    family = _bound_family(pattern, preset)
    needs = tuple(_compile_need(scope, pattern, preset, family) for scope in scopes)
    return ScopeRequirement(scopes, needs, _listing(scopes, pattern, preset))


def _bound_family(pattern: RoutePattern, preset: str | None) -> str | None:
    """Under agentos, /agents/{id}/... binds the item id of its family (as Agno reads the path)."""
    s = pattern.segments
    if preset == "agentos" and len(s) >= 2 and s[0] in AGENTOS_FAMILIES and s[1] is None:
        return s[0]
    return None


def _listing(scopes: tuple[str, ...], pattern: RoutePattern, preset: str | None) -> tuple[str, str] | None:
    s = pattern.segments
    if preset != "agentos" or pattern.tail or len(s) != 1 or s[0] not in AGENTOS_FAMILIES or not scopes:
        return None
    parts = scopes[0].split(":")  # Agno takes the family and action from the first required scope
    return (parts[0], parts[1]) if len(parts) == 2 and parts[0] == s[0] else None


def _split(scope: str) -> list[str]:
    if not scope:
        raise ValueError("empty scope")
    if _WHITESPACE.search(scope) is not None:
        raise ValueError(f"scope {scope!r} contains whitespace (list scopes as separate items)")
    parts = scope.split(":")
    if len(parts) > 3:
        raise ValueError(f"scope {scope!r} has more than 3 ':'-separated parts")
    if "" in parts:
        raise ValueError(f"scope {scope!r} has an empty part")
    for i, part in enumerate(parts):
        if ("{" in part or "}" in part) and not (i == 1 and len(parts) == 3):
            raise ValueError(f"scope {scope!r}: a {{param}} may only be the id, as in res:{{param}}:action")
    return parts


def _compile_need(scope: str, pattern: RoutePattern, preset: str | None, family: str | None) -> _Need:
    parts = _split(scope)
    if len(parts) == 1:
        return _Need(scope, frozenset({scope}), -1, (), None)
    resource, action = parts[0], parts[-1]
    names = _resource_names(resource, preset)
    everywhere = frozenset(s for r in names for s in (f"{r}:{action}", f"{r}:*:{action}"))
    per_item = tuple((f"{r}:", f":{action}") for r in names)
    if len(parts) == 2:
        if family is not None and names[0] == family:
            return _Need(scope, everywhere, _family_slot(pattern, family), per_item, None)
        return _Need(scope, everywhere, -1, (), None)
    item = parts[1]
    if item == "*":
        return _Need(scope, everywhere, -1, (), None)
    param = _PLACEHOLDER.fullmatch(item)
    if param is None:
        if "{" in item or "}" in item:
            raise ValueError(f"scope {scope!r}: {item!r} is not a {{param}} name")
        return _Need(scope, everywhere | {f"{r}:{item}:{action}" for r in names}, -1, (), None)
    slot = _param_slot(pattern, param.group(1), scope)
    return _Need(scope, everywhere, slot, per_item, (f"{parts[0]}:", f":{action}"))


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
        raise ValueError(f"scope {scope!r} names {{{name}}}, which route {pattern.key!r} does not bind")
    return names.index(name)


def _family_slot(pattern: RoutePattern, family: str) -> int:
    name = pattern.param_names[1]
    if name is None:
        # The id must reach evaluate() as a bound parameter; an anonymous '*' is never bound.
        raise ValueError(
            f"route {pattern.key!r} checks per-{family} scopes against its second segment: "
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
    ids = frozenset(
        parts[1]
        for parts in (g.split(":") for g in granted)
        if len(parts) == 3 and parts[0] == family and parts[2] == action and parts[1] not in ("", "*")
    )
    if not ids:
        return ScopeResult(False, missing)
    return ScopeResult(True, (), ListingFilter(family, ids))
