"""MCP tool rules compiled onto the route scope machinery, so a tool's scopes mean exactly what a route's do.

A tool rule is a list of alternatives, each all-of. A `{param}` in a scope (`agents:{agent_id}:run`) binds
the tool call's `arguments.param`, the way a route binds a path segment: it is satisfied by `agents:run`,
`agents:*:run` or `agents:<that id>:run`. Each alternative is compiled against a synthetic route whose
segments are its parameters, so `evaluate()` (policy/scopes.py) stays the one place scopes are judged.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from authproxy.config.conditions import Condition
from authproxy.errors import BadItemId
from authproxy.policy.patterns import parse_pattern
from authproxy.policy.scopes import ScopeRequirement, compile_requirement, evaluate, is_item_id

__all__ = ["CompiledTool", "ToolVerdict", "check_call", "compile_tool", "may_call_some"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NEVER_AN_ITEM = ":"  # no per-item scope has ':' in its id, so this binding tests family-wide grants only
_MAX_COMBINATIONS = 256  # tools/list: per-item ids tried per alternative; more only ever means "allowed"


@dataclass(frozen=True, slots=True)
class _Alternative:
    params: tuple[str, ...]  # argument names, in the synthetic route's order
    requirement: ScopeRequirement
    # (param, "res:", ":action") for each templated scope: where per-item grants name an id
    templates: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class CompiledTool:
    name: str
    alternatives: tuple[_Alternative, ...]  # empty: denied to all but the admin scope
    pins: tuple[tuple[str, str], ...] = ()  # (argument, identity field) set to the caller's own
    when: Condition | None = None  # judged after the scopes and pins hold (proxy/mcp/messages.py)


@dataclass(frozen=True, slots=True)
class ToolVerdict:
    allowed: bool
    reason: str
    required: tuple[str, ...] = ()  # ids bound from the arguments
    missing: tuple[str, ...] = ()


def compile_tool(
    name: str,
    alternatives: tuple[tuple[str, ...], ...],
    *,
    preset: str | None,
    pins: tuple[tuple[str, str], ...] = (),
    when: Condition | None = None,
) -> CompiledTool:
    """Compile one rule; raise ValueError for a malformed scope (the message names it)."""
    compiled = tuple(_compile_alternative(scopes, preset) for scopes in alternatives)
    return CompiledTool(name, compiled, pins, when)


def _compile_alternative(scopes: tuple[str, ...], preset: str | None) -> _Alternative:
    params: list[str] = []
    templates: list[tuple[str, str, str]] = []
    for scope in scopes:
        for found in _PLACEHOLDER.finditer(scope):
            if found.group(1) not in params:
                params.append(found.group(1))
        parts = scope.split(":")
        named = _PLACEHOLDER.fullmatch(parts[1]) if len(parts) == 3 else None
        if named is not None:
            templates.append((named.group(1), f"{parts[0]}:", f":{parts[2]}"))
    route = "* /" + "/".join(f"{{{p}}}" for p in params)
    requirement = compile_requirement(scopes, parse_pattern(route), preset=preset)
    return _Alternative(tuple(params), requirement, tuple(templates))


def _bind(alternative: _Alternative, arguments: Mapping[str, object]) -> tuple[tuple[str, str], ...] | None:
    """The alternative's parameters bound from the call's arguments; None when one is absent or not text.

    Raises BadItemId when an argument is text that cannot name an item in a scope.
    """
    bound: list[tuple[str, str]] = []
    for name in alternative.params:
        value = arguments.get(name)
        if not isinstance(value, str) or not value:
            return None
        if not is_item_id(value):
            raise BadItemId(f"arguments.{name} must name an item id (no ':', whitespace or control)")
        bound.append((name, value))
    return tuple(bound)


def check_call(
    tool: CompiledTool, arguments: Mapping[str, object], granted: frozenset[str], admin_scope: str | None
) -> ToolVerdict:
    """May a caller holding `granted` call `tool` with these arguments? Raises BadItemId (see _bind)."""
    if admin_scope is not None and admin_scope in granted:
        return ToolVerdict(True, "admin scope")
    if not tool.alternatives:
        required = (admin_scope,) if admin_scope is not None else ()
        return ToolVerdict(False, f"the MCP policy allows tool {tool.name!r} to no scope", required, required)
    first: ToolVerdict | None = None
    for alternative in tool.alternatives:
        params = _bind(alternative, arguments)
        if params is None:
            continue
        result = evaluate(alternative.requirement, granted, params, admin_scope=admin_scope, method="POST")
        needed = alternative.requirement.scopes_for(params)
        if result.allowed:
            return ToolVerdict(True, "scopes satisfied", needed)
        if first is None:
            first = ToolVerdict(False, "insufficient scope for this tool", needed, result.missing)
    if first is not None:
        return first
    wanted = sorted({p for a in tool.alternatives for p in a.params})
    written = tool.alternatives[0].requirement.scopes
    reason = f"the call lacks the argument(s) its scopes name: {', '.join(wanted)}"
    return ToolVerdict(False, reason, written, written)


def may_call_some(tool: CompiledTool, granted: frozenset[str], admin_scope: str | None) -> bool:
    """Whether some arguments would let the caller call `tool`: what a filtered tools/list shows."""
    if admin_scope is not None and admin_scope in granted:
        return True
    for alternative in tool.alternatives:
        for params in itertools.islice(_candidate_bindings(alternative, granted), _MAX_COMBINATIONS):
            result = evaluate(
                alternative.requirement, granted, params, admin_scope=admin_scope, method="POST"
            )
            if result.allowed:
                return True
    return False


def _candidate_bindings(
    alternative: _Alternative, granted: frozenset[str]
) -> itertools.product[tuple[tuple[str, str], ...]]:
    """Every binding worth trying: the ids the caller's per-item grants name, plus one no grant names."""
    choices: list[list[tuple[str, str]]] = []
    for name in alternative.params:
        ids = {_NEVER_AN_ITEM}
        for param, prefix, suffix in alternative.templates:
            if param != name:
                continue
            for scope in granted:
                if scope.startswith(prefix) and scope.endswith(suffix):
                    item = scope[len(prefix) : len(scope) - len(suffix)]
                    if item and ":" not in item and item != "*":
                        ids.add(item)
        choices.append([(name, item) for item in sorted(ids)])
    return itertools.product(*choices)
