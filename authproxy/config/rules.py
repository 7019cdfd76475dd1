"""The `policy` section -> PolicyConfig: rules located in their file, patterns checked, and a preset
(read from its own YAML through the same source and readers) merged under the user's rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping as EnvMap
from dataclasses import dataclass, field
from typing import Literal, cast

from authproxy.config.fields import (
    Report,
    Section,
    model_keys,
    or_none,
    read_bool,
    read_choice,
    read_list,
    read_preset_file,
    read_section,
    read_str,
)
from authproxy.config.model import PolicyConfig, PublicRule, RouteRule
from authproxy.config.route_form import read_route_form
from authproxy.config.source import MapNode, Node

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


@dataclass(slots=True)
class _Rules:
    """Rules of one file with their canonical keys; `ok` is False once anything was reported."""

    admin_scope: str | None = None
    public: list[tuple[str, PublicRule]] = field(default_factory=list)
    routes: list[tuple[str, RouteRule]] = field(default_factory=list)
    ok: bool = True


def read_policy(
    report: Report, line: int, node: Node, preset_dir: str, env: EnvMap[str, str]
) -> PolicyConfig | None:
    section = or_none(read_section, report, "policy", line, node, _POLICY_KEYS)
    if section is None:
        return None
    user = _read_rules(report, section)
    unmapped: str | None = "deny"
    if (value := section.get("unmapped")) is not None:
        unmapped = or_none(read_choice, report, "policy.unmapped", value, ("deny", "authenticated"))
        if unmapped == "authenticated":
            report.warn(
                value.line, "policy.unmapped: authenticated lets any valid token reach routes no rule names"
            )
    preset: str | None = None
    base: _Rules | None = _Rules()
    if (value := section.get("preset")) is not None:
        preset = or_none(read_choice, report, "policy.preset", value, PRESETS)
        base = _load_preset(report, value.line, preset, preset_dir, env) if preset is not None else None
    isolation = _read_isolation(report, section, preset)
    if isolation and preset is not None and base is not None:
        fragment = _load_preset(
            report, section.key_line("user_isolation"), _ISOLATION_FRAGMENT[preset], preset_dir, env
        )
        base = _layer(base, fragment) if fragment is not None else None
    if base is None or not user.ok or unmapped is None or isolation is None:
        return None
    public, routes = _merge(base, user)
    return PolicyConfig(
        preset=cast(Literal["agentos"] | None, preset),
        admin_scope=user.admin_scope or base.admin_scope,
        unmapped=cast(Literal["deny", "authenticated"], unmapped),
        public=public,
        routes=routes,
        user_isolation=isolation,
    )


def _read_isolation(report: Report, section: Section, preset: str | None) -> bool | None:
    node = section.get("user_isolation")
    if node is None:
        return False
    value = or_none(read_bool, report, "policy.user_isolation", node)
    if value and preset not in _ISOLATION_FRAGMENT:
        report.error(
            node.line,
            "policy.user_isolation: needs 'preset: agentos' (elsewhere, pin fields with a rule's 'pin:')",
        )
        return None
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


def _load_preset(
    report: Report, line: int, name: str, preset_dir: str, env: EnvMap[str, str]
) -> _Rules | None:
    path = os.path.join(preset_dir, f"{name}.yaml")
    read = or_none(read_preset_file, report, line, path, f"{name} preset", _PRESET_KEYS, env)
    if read is None:
        return None
    there, section, clean = read
    rules = _read_rules(there, section)
    return rules if rules.ok and clean else None


def _read_rules(report: Report, section: Section) -> _Rules:
    rules = _Rules()
    prefix = f"{section.path}." if section.path else ""
    if (node := section.get("admin_scope")) is not None:
        rules.admin_scope = _scope(report, f"{prefix}admin_scope", node)
        rules.ok = rules.admin_scope is not None
    seen: dict[str, str] = {}
    if (node := section.get("public")) is not None:
        _read_public(report, f"{prefix}public", node, rules, seen)
    if (node := section.get("routes")) is not None:
        _read_routes(report, f"{prefix}routes", node, rules, seen)
    return rules


def _read_public(report: Report, path: str, node: Node, rules: _Rules, seen: dict[str, str]) -> None:
    items = or_none(read_list, report, path, node, allow_empty=True)
    if items is None:
        rules.ok = False
        return
    for i, item in enumerate(items):
        label = f"{path}[{i}]"
        key = or_none(read_str, report, label, item)
        canonical = _canonical(report, label, item.line, key, seen) if key is not None else None
        if key is None or canonical is None:
            rules.ok = False
            continue
        rules.public.append((canonical, PublicRule(key, report.file, item.line)))


def _read_routes(report: Report, path: str, node: Node, rules: _Rules, seen: dict[str, str]) -> None:
    if not isinstance(node, MapNode):
        or_none(read_section, report, path, node.line, node, ())  # reports the type
        rules.ok = False
        return
    for key_node, value in node.items:
        label = f'{path}["{key_node.text}"]'
        canonical = _canonical(report, label, key_node.line, key_node.text, seen)
        if isinstance(value, MapNode):  # the general form: {scopes, pin, items, response, owner}
            form = read_route_form(report, label, value, _scopes)
            scopes, content = form if form is not None else (None, None)
        else:
            scopes, content = _scopes(report, label, value), None
        if canonical is None or scopes is None:
            rules.ok = False
            continue
        rule = RouteRule(key_node.text, scopes, report.file, key_node.line, content)
        rules.routes.append((canonical, rule))


def _canonical(report: Report, label: str, line: int, key: str, seen: dict[str, str]) -> str | None:
    """The pattern's canonical key, or None after reporting a bad pattern or a second rule for it."""
    try:
        canonical = parse_pattern(key).canonical
    except ValueError as bad:
        report.error(line, f"{label}: {bad}")
        return None
    if canonical in seen:
        report.error(line, f"{label}: the same route as {seen[canonical]}")
        return None
    seen[canonical] = f"'{key}' (line {line})"
    return canonical


def _scopes(report: Report, label: str, node: Node) -> tuple[str, ...] | None:
    items = or_none(read_list, report, label, node, allow_empty=True)  # [] means any valid token
    if items is None:
        return None
    scopes = [_scope(report, f"{label}[{i}]", item) for i, item in enumerate(items)]
    return tuple(s for s in scopes if s is not None) if None not in scopes else None


def _scope(report: Report, label: str, node: Node) -> str | None:
    scope = or_none(read_str, report, label, node)
    if scope is not None and any(c.isspace() for c in scope):
        # Tokens carry scopes space-separated, so a scope with a space could never be held.
        report.error(node.line, f"{label}: a scope cannot contain whitespace")
        return None
    return scope


def _merge(base: _Rules, user: _Rules) -> tuple[tuple[PublicRule, ...], tuple[RouteRule, ...]]:
    """Preset rules first, minus any the user's rules replace (same canonical key, either kind)."""
    replaced = {c for c, _ in user.public} | {c for c, _ in user.routes}
    public = [r for c, r in base.public if c not in replaced] + [r for _, r in user.public]
    routes = [r for c, r in base.routes if c not in replaced] + [r for _, r in user.routes]
    return tuple(public), tuple(routes)
