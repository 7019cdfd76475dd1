"""The mapping form of a route rule: `"METHOD PATH": {scopes, pin, items, response, owner, max_body}`.

A route value that is a list stays what it always was (scopes only). The mapping adds content checks,
each validated here with its location, so a typo fails `authproxy check` instead of a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from authproxy.config.content import (
    CLAIMS,
    DEFAULT_MAX_BODY,
    Claim,
    ContentRule,
    FieldClaim,
    FieldRef,
    ItemScopes,
    OwnerLookup,
    parse_field,
)
from authproxy.config.fields import Report, model_keys, or_none, read_section, read_str
from authproxy.config.source import MapNode, Node, Scalar

__all__ = ["read_route_form"]

# The route's scopes, then the ContentRule; `pins` is written `pin` (one field per entry, like `items`).
_KEYS = ("scopes", *model_keys(ContentRule, rename={"pins": "pin"}))
_OWNER_KEYS = model_keys(OwnerLookup, rename={"target": "get"})  # `get: /path`: the lookup's request
_MAX_BODY_LIMIT = 1024 * 1024 * 1024
V = TypeVar("V")
R = TypeVar("R")
_FAILED = OwnerLookup("")  # _owner's "reported" marker

ScopeReader = Callable[[Report, str, Node], tuple[str, ...] | None]


def read_route_form(
    report: Report, label: str, node: MapNode, read_scopes: ScopeReader
) -> tuple[tuple[str, ...], ContentRule | None] | None:
    """(scopes, content rule or None when the mapping asks for no content check); None after reporting."""
    section = or_none(read_section, report, label, node.line, node, _KEYS, required=("scopes",))
    if section is None:
        return None
    scopes_node = section.get("scopes")
    scopes = read_scopes(report, f"{label}.scopes", scopes_node) if scopes_node is not None else None
    pins = _pairs(report, f"{label}.pin", section.get("pin"), _claim, _field_claim)
    items = _pairs(report, f"{label}.items", section.get("items"), _item_scopes(read_scopes), ItemScopes)
    response = _pairs(
        report, f"{label}.response", section.get("response"), _claim, _field_claim, where=("json",)
    )
    owner = _owner(report, f"{label}.owner", section.get("owner"))
    max_body = _max_body(report, f"{label}.max_body", section.get("max_body"))
    if scopes is None or pins is None or items is None or response is None or max_body is None:
        return None
    if owner is _FAILED:
        return None
    if not (pins or items or response or owner):
        return scopes, None
    return scopes, ContentRule(pins, items, response, owner, max_body)


def _pairs(
    report: Report,
    label: str,
    node: Node | None,
    read: Callable[[Report, str, Node], V | None],
    build: Callable[[FieldRef, V], R],
    *,
    where: tuple[str, ...] = ("query", "form", "json"),
) -> tuple[R, ...] | None:
    """A `FIELD: value` map read into `build(field, value)` items; None after reporting."""
    if node is None:
        return ()
    if not isinstance(node, MapNode):
        or_none(read_section, report, label, node.line, node, ())  # reports the type
        return None
    out: list[R] = []
    ok = True
    for key, value in node.items:
        entry = f"{label}.{key.text}"
        try:
            ref = parse_field(key.text, where=where)
        except ValueError as bad:
            report.error(key.line, f"{label}: {bad}")
            ok = False
            continue
        read_value = read(report, entry, value)
        if read_value is None:
            ok = False
            continue
        out.append(build(ref, read_value))
    return tuple(out) if ok else None


def _field_claim(ref: FieldRef, claim: Claim) -> FieldClaim:
    return FieldClaim(ref, claim)


def _claim(report: Report, label: str, node: Node) -> Claim | None:
    text = or_none(read_str, report, label, node)
    if text is None:
        return None
    if text not in CLAIMS:
        report.error(node.line, f"{label}: must be one of {', '.join(CLAIMS)}; got '{text}'")
        return None
    return text


def _item_scopes(read_scopes: ScopeReader) -> Callable[[Report, str, Node], tuple[str, ...] | None]:
    def read(report: Report, label: str, node: Node) -> tuple[str, ...] | None:
        scopes = read_scopes(report, label, node)
        if scopes is None:
            return None
        if not scopes or any("{value}" not in s for s in scopes):
            report.error(
                node.line, f"{label}: every item scope names the item as {{value}}, e.g. agents:{{value}}:run"
            )
            return None
        return scopes

    return read


def _owner(report: Report, label: str, node: Node | None) -> OwnerLookup | None:
    """The lookup, None when absent, _FAILED after reporting."""
    if node is None:
        return None
    section = or_none(read_section, report, label, node.line, node, _OWNER_KEYS, required=("get",))
    if section is None or (target_node := section.get("get")) is None:
        return _FAILED
    target = or_none(read_str, report, f"{label}.get", target_node)
    if target is None:
        return _FAILED
    if not target.startswith("/") or any(c.isspace() for c in target):
        report.error(
            target_node.line,
            f"{label}.get: an upstream path starting with '/', e.g. /sessions/{{query.session_id}}",
        )
        return _FAILED
    expect = _pairs(
        report, f"{label}.expect", section.get("expect"), _template, lambda f, v: (f, v), where=("json",)
    )
    status = 404
    if (status_node := section.get("status")) is not None:
        if not (
            isinstance(status_node, Scalar)
            and type(status_node.value) is int
            and 400 <= status_node.value <= 499
        ):
            report.error(status_node.line, f"{label}.status: a 4xx status code")
            return _FAILED
        status = status_node.value
    if expect is None:
        return _FAILED
    return OwnerLookup(target, expect, status)


def _template(report: Report, label: str, node: Node) -> str | None:
    return or_none(read_str, report, label, node)


def _max_body(report: Report, label: str, node: Node | None) -> int | None:
    if node is None:
        return DEFAULT_MAX_BODY
    if isinstance(node, Scalar) and type(node.value) is int and 0 < node.value <= _MAX_BODY_LIMIT:
        return node.value
    report.error(node.line, f"{label}: a number of bytes between 1 and {_MAX_BODY_LIMIT}")
    return None
