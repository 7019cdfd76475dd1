"""The mapping form of a route rule: `"METHOD PATH": {scopes, when, pin, items, response, owner, max_body}`.

A route value that is a list stays what it always was (scopes only). The mapping adds content checks,
each validated here with its location, so a typo fails `authproxy check` instead of a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from authproxy.config.conditions import Condition
from authproxy.config.content import (
    CLAIMS,
    Claim,
    ContentRule,
    FieldClaim,
    FieldRef,
    ItemScopes,
    OwnerLookup,
    parse_field,
)
from authproxy.config.fields import Checks, Invalid, Report, model_keys, read_map, read_section, read_str
from authproxy.config.source import MapNode, Node, Scalar
from authproxy.config.when import read_when

__all__ = ["read_route_form"]

# The route's scopes, then the ContentRule; `pins` is written `pin` (one field per entry, like `items`).
_KEYS = ("scopes", "when", *model_keys(ContentRule, rename={"pins": "pin"}))
_OWNER_KEYS = model_keys(OwnerLookup, rename={"target": "get"})  # `get: /path`: the lookup's request
_MAX_BODY_LIMIT = 1024 * 1024 * 1024
_DEFAULT = ContentRule()
_DEFAULT_OWNER = OwnerLookup("")
V = TypeVar("V")
R = TypeVar("R")

ScopeReader = Callable[[Report, str, Node], tuple[str, ...]]


def read_route_form(
    report: Report, label: str, node: MapNode, read_scopes: ScopeReader
) -> tuple[tuple[str, ...], ContentRule | None, Condition | None]:
    """(scopes, content rule or None when the mapping asks for no content check, `when` condition or None);
    Invalid after reporting."""
    section = read_section(report, label, node.line, node, _KEYS, required=("scopes",))
    checks = Checks()
    d = _DEFAULT
    scopes = checks.key(section, "scopes", lambda p, n: read_scopes(report, p, n), None)
    when = checks.key(section, "when", lambda p, n: read_when(report, p, n, "route"), None)
    pins = checks.key(section, "pin", lambda p, n: _pairs(report, p, n, _claim, _field_claim), d.pins)
    items = checks.key(
        section, "items", lambda p, n: _pairs(report, p, n, _item_scopes(read_scopes), ItemScopes), d.items
    )
    response = checks.key(
        section,
        "response",
        lambda p, n: _pairs(report, p, n, _claim, _field_claim, where=("json",)),
        d.response,
    )
    owner = checks.key(section, "owner", lambda p, n: _owner(report, p, n), d.owner)
    max_body = checks.key(section, "max_body", lambda p, n: _max_body(report, p, n), d.max_body)
    checks.done()
    if scopes is None:
        raise Invalid  # missing (reported by read_section)
    if not (pins or items or response or owner):
        return scopes, None, when
    return scopes, ContentRule(pins, items, response, owner, max_body), when


def _pairs(
    report: Report,
    label: str,
    node: Node,
    read: Callable[[Report, str, Node], V],
    build: Callable[[FieldRef, V], R],
    *,
    where: tuple[str, ...] = ("query", "form", "json"),
) -> tuple[R, ...]:
    """A `FIELD: value` map read into `build(field, value)` items; Invalid after reporting."""
    checks = Checks()
    out: list[R] = []
    for key, value in read_map(report, label, node).items:
        entry = f"{label}.{key.text}"
        try:
            ref = parse_field(key.text, where=where)
        except ValueError as bad:
            report.error(key.line, f"{label}: {bad}")
            checks.failed.add(entry)
            continue
        read_value = checks.attempt(entry, lambda: read(report, entry, value), None)  # noqa: B023
        if read_value is not None:
            out.append(build(ref, read_value))
    checks.done()
    return tuple(out)


def _field_claim(ref: FieldRef, claim: Claim) -> FieldClaim:
    return FieldClaim(ref, claim)


def _claim(report: Report, label: str, node: Node) -> Claim:
    text = read_str(report, label, node)
    if text not in CLAIMS:
        raise report.invalid(node.line, f"{label}: must be one of {', '.join(CLAIMS)}; got '{text}'")
    return text


def _item_scopes(read_scopes: ScopeReader) -> ScopeReader:
    def read(report: Report, label: str, node: Node) -> tuple[str, ...]:
        scopes = read_scopes(report, label, node)
        if not scopes or any("{value}" not in s for s in scopes):
            raise report.invalid(
                node.line, f"{label}: every item scope names the item as {{value}}, e.g. agents:{{value}}:run"
            )
        return scopes

    return read


def _owner(report: Report, label: str, node: Node) -> OwnerLookup:
    section = read_section(report, label, node.line, node, _OWNER_KEYS, required=("get",))
    target_node = section.get("get")
    if target_node is None:
        raise Invalid  # missing (reported by read_section)
    target = read_str(report, f"{label}.get", target_node)
    if not target.startswith("/") or any(c.isspace() for c in target):
        raise report.invalid(
            target_node.line,
            f"{label}.get: an upstream path starting with '/', e.g. /sessions/{{query.session_id}}",
        )
    checks = Checks()
    expect = checks.key(
        section,
        "expect",
        lambda p, n: _pairs(report, p, n, read_str, _expectation, where=("json",)),
        _DEFAULT_OWNER.expect,
    )
    status = checks.key(section, "status", lambda p, n: _status(report, p, n), _DEFAULT_OWNER.status)
    checks.done()
    return OwnerLookup(target, expect, status)


def _expectation(ref: FieldRef, template: str) -> tuple[FieldRef, str]:
    return ref, template


def _status(report: Report, path: str, node: Node) -> int:
    if isinstance(node, Scalar) and type(node.value) is int and 400 <= node.value <= 499:
        return node.value
    raise report.invalid(node.line, f"{path}: a 4xx status code")


def _max_body(report: Report, label: str, node: Node) -> int:
    if isinstance(node, Scalar) and type(node.value) is int and 0 < node.value <= _MAX_BODY_LIMIT:
        return node.value
    raise report.invalid(node.line, f"{label}: a number of bytes between 1 and {_MAX_BODY_LIMIT}")
