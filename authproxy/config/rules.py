"""The `policy` section -> PolicyConfig: rules located in their file, patterns checked, and a preset
(read from its own YAML through the same source and readers) merged under the user's rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping as EnvMap
from dataclasses import dataclass, field
from typing import Literal, cast

from authproxy.config.conditions import Condition
from authproxy.config.content import ContentRule
from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    Section,
    model_keys,
    read_bool,
    read_choice,
    read_items,
    read_list,
    read_map,
    read_preset_file,
    read_section,
    read_str,
)
from authproxy.config.model import PolicyConfig, PublicRule, RouteRule
from authproxy.config.route_form import read_route_form
from authproxy.config.source import MapNode, Node, Scalar

# The route-pattern grammar is policy's; config checks each pattern at load so a bad one is FILE:LINE.
# policy.patterns depends on nothing of config, so this is no cycle (declared in the import contract).
from authproxy.policy.patterns import parse_pattern

__all__ = ["PRESETS", "read_policy"]

PRESETS = ("agentos",)
_POLICY_KEYS = model_keys(PolicyConfig)
# Merged over the preset when `user_isolation: true`: the rules that pin callers to their own rows.
_ISOLATION_FRAGMENT = {"agentos": "agentos-isolation"}
# What a preset file may set of the policy: its admin scope and its rules.
_PRESET_KEYS = ("admin_scope", "public", "routes")
_UNMAPPED = ("deny", "authenticated")
_DEFAULT = PolicyConfig()


@dataclass(slots=True)
class _Rules:
    """Rules of one file with their canonical keys."""

    admin_scope: str | None = None
    public: list[tuple[str, PublicRule]] = field(default_factory=list)
    routes: list[tuple[str, RouteRule]] = field(default_factory=list)


def read_policy(
    report: Report, line: int, node: Node, preset_dir: str, env: EnvMap[str, str]
) -> PolicyConfig:
    section = read_section(report, "policy", line, node, _POLICY_KEYS)
    checks = Checks()
    user = checks.attempt("rules", lambda: _read_rules(report, section), _Rules())
    unmapped_default: str = _DEFAULT.unmapped
    unmapped = checks.key(
        section, "unmapped", lambda p, n: read_choice(report, p, n, _UNMAPPED), unmapped_default
    )
    if unmapped == "authenticated":
        report.warn(
            section.entries["unmapped"].line,
            "policy.unmapped: authenticated lets any valid token reach routes no rule names",
        )
    preset = checks.key(section, "preset", lambda p, n: read_choice(report, p, n, PRESETS), None)
    base = _Rules()
    if preset is not None:
        at = section.entries["preset"].line
        base = checks.attempt("preset", lambda: _load_preset(report, at, preset, preset_dir, env), base)
    isolation = checks.key(section, "user_isolation", lambda p, n: _isolation(report, p, n, preset), False)
    if isolation and preset is not None and checks.ok("preset"):
        at = section.key_line("user_isolation")
        name = _ISOLATION_FRAGMENT[preset]
        fragment = checks.attempt(
            "user_isolation", lambda: _load_preset(report, at, name, preset_dir, env), None
        )
        if fragment is not None:
            base = _layer(base, fragment)
    checks.done()
    public, routes = _merge(base, user)
    return PolicyConfig(
        preset=cast(Literal["agentos"] | None, preset),
        admin_scope=user.admin_scope or base.admin_scope,
        unmapped=cast(Literal["deny", "authenticated"], unmapped),
        public=public,
        routes=routes,
        user_isolation=isolation,
    )


def _isolation(report: Report, path: str, node: Node, preset: str | None) -> bool:
    value = read_bool(report, path, node)
    if value and preset not in _ISOLATION_FRAGMENT:
        raise report.invalid(
            node.line, f"{path}: needs 'preset: agentos' (elsewhere, pin fields with a rule's 'pin:')"
        )
    return value


def _layer(base: _Rules, fragment: _Rules) -> _Rules:
    """The preset with the fragment's rules replacing the preset's rules for the same route."""
    public, routes = _merge(base, fragment)
    return _Rules(
        base.admin_scope,
        [(_canonical_of(r.key), r) for r in public],
        [(_canonical_of(r.key), r) for r in routes],
    )


def _canonical_of(key: str) -> str:
    return parse_pattern(key).canonical


def _load_preset(report: Report, line: int, name: str, preset_dir: str, env: EnvMap[str, str]) -> _Rules:
    path = os.path.join(preset_dir, f"{name}.yaml")
    there, section, clean = read_preset_file(report, line, path, f"{name} preset", _PRESET_KEYS, env)
    rules = _read_rules(there, section)
    if not clean:
        raise Invalid  # the preset's own problems, reported under its file
    return rules


def _read_rules(report: Report, section: Section) -> _Rules:
    """The admin scope and rules of the policy or a preset file; Invalid after reading them all."""
    checks = Checks()
    rules = _Rules()
    rules.admin_scope = checks.key(section, "admin_scope", lambda p, n: _scope(report, p, n), None)
    seen: dict[str, str] = {}  # canonical key -> the rule that has it, across public and routes
    rules.public = checks.key(section, "public", lambda p, n: _read_public(report, p, n, seen), rules.public)
    rules.routes = checks.key(section, "routes", lambda p, n: _read_routes(report, p, n, seen), rules.routes)
    checks.done()
    return rules


def _read_public(report: Report, path: str, node: Node, seen: dict[str, str]) -> list[tuple[str, PublicRule]]:
    items = read_list(report, path, node, allow_empty=True)
    checks = Checks()
    public: list[tuple[str, PublicRule]] = []
    for i, item in enumerate(items):
        label = f"{path}[{i}]"
        rule = checks.attempt(label, lambda: _public_rule(report, label, item, seen), None)  # noqa: B023
        if rule is not None:
            public.append(rule)
    checks.done()
    return public


def _public_rule(report: Report, label: str, node: Node, seen: dict[str, str]) -> tuple[str, PublicRule]:
    key = read_str(report, label, node)
    return _canonical(report, label, node.line, key, seen), PublicRule(key, report.file, node.line)


def _read_routes(report: Report, path: str, node: Node, seen: dict[str, str]) -> list[tuple[str, RouteRule]]:
    checks = Checks()
    routes: list[tuple[str, RouteRule]] = []
    for key, value in read_map(report, path, node).items:
        label = f'{path}["{key.text}"]'
        rule = checks.attempt(label, lambda: _route(report, label, key, value, seen), None)  # noqa: B023
        if rule is not None:
            routes.append(rule)
    checks.done()
    return routes


def _route(
    report: Report, label: str, key: Scalar, value: Node, seen: dict[str, str]
) -> tuple[str, RouteRule]:
    """One rule: its key is checked (and claimed in `seen`) whether or not its scopes read."""
    checks = Checks()
    canonical = checks.attempt("key", lambda: _canonical(report, label, key.line, key.text, seen), "")
    scopes: tuple[str, ...] = ()
    content: ContentRule | None = None
    when: Condition | None = None
    if isinstance(value, MapNode):  # the general form: {scopes, when, pin, items, response, owner}
        scopes, content, when = checks.attempt(
            "value", lambda: read_route_form(report, label, value, _scopes), (scopes, content, when)
        )
    else:
        scopes = checks.attempt("value", lambda: _scopes(report, label, value), scopes)
    checks.done()
    return canonical, RouteRule(key.text, scopes, report.file, key.line, content, when)


def _canonical(report: Report, label: str, line: int, key: str, seen: dict[str, str]) -> str:
    """The pattern's canonical key; Invalid after reporting a bad pattern or a second rule for it."""
    try:
        canonical = parse_pattern(key).canonical
    except ValueError as bad:
        raise report.invalid(line, f"{label}: {bad}") from None
    if canonical in seen:
        raise report.invalid(line, f"{label}: the same route as {seen[canonical]}")
    seen[canonical] = f"'{key}' (line {line})"
    return canonical


def _scopes(report: Report, label: str, node: Node) -> tuple[str, ...]:
    # [] means any valid token
    return read_items(
        report, label, node, lambda path, item: _scope(report, path, item), "", allow_empty=True
    )


def _scope(report: Report, label: str, node: Node) -> str:
    scope = read_str(report, label, node)
    if any(c.isspace() for c in scope):
        # Tokens carry scopes space-separated, so a scope with a space could never be held.
        raise report.invalid(node.line, f"{label}: a scope cannot contain whitespace")
    return scope


def _merge(base: _Rules, user: _Rules) -> tuple[tuple[PublicRule, ...], tuple[RouteRule, ...]]:
    """Preset rules first, minus any the user's rules replace (same canonical key, either kind)."""
    replaced = {c for c, _ in user.public} | {c for c, _ in user.routes}
    public = [r for c, r in base.public if c not in replaced] + [r for _, r in user.public]
    routes = [r for c, r in base.routes if c not in replaced] + [r for _, r in user.routes]
    return tuple(public), tuple(routes)
