"""A rule's `when` judged on one request: the variables it reads built (only those), the expression
evaluated, and anything but `true` refused (ConditionFailed, 403 `condition_failed`).

The gate judges a route's condition right after its scopes hold, the admin scope included; a condition
that reads `body` is judged by the content stage once the body is read (policy/content/check.py); a tool
rule's, where the MCP messages are checked (proxy/mcp/messages.py). All three go through `judge`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from authproxy.config.conditions import Condition
from authproxy.errors import ConditionFailed
from authproxy.standards.cel import evaluate

__all__ = ["REFUSED", "Judged", "judge", "request_variables", "tool_variables"]

REFUSED = "a condition of this rule is not met"  # the answer's `detail`: the expression is not told


class Judged(NamedTuple):
    """A condition that was evaluated: what explain prints and the access line names. A NamedTuple: one is
    made per request a condition allows, at a third of a frozen dataclass's cost."""

    condition: str  # the expression and where it is written
    value: str  # "true", "false" or "error: ..."
    passed: bool


def judge(condition: Condition, variables: Mapping[str, Any], *, body: object = None) -> Judged:
    """The condition's verdict on `variables`; raises ConditionFailed (with `body`, a protocol's own error
    shape, when given) unless it is the boolean true."""
    outcome = evaluate(condition.expression, variables)
    if not outcome.passed:
        raise ConditionFailed(REFUSED, condition.described, outcome.value, body=body)
    return Judged(condition.described, outcome.value, True)


def request_variables(
    condition: Condition,
    claims: Mapping[str, Any],
    method: str,
    segments: tuple[str, ...],
    query: str | None,
    headers: Iterable[tuple[str, str]],
    params: tuple[tuple[str, str], ...],
) -> dict[str, Any]:
    """The variables a route condition reads, and only those: a claims-only condition builds no query or
    header map. `body` is added by the content stage."""
    names = condition.expression.names
    out: dict[str, Any] = {}
    if "claims" in names:
        out["claims"] = dict(claims)  # the verified token's read-only view; CEL takes plain mappings
    if "request.method" in names:
        out["request.method"] = method
    if "request.path" in names:
        out["request.path"] = "/" + "/".join(segments)  # percent-decoded, as routes match it
    if "request.query" in names:
        out["request.query"] = _lists(parse_qsl(query or "", keep_blank_values=True))
    if "request.headers" in names:
        out["request.headers"] = _lists((name.lower(), value) for name, value in headers)
    if "params" in names:
        out["params"] = dict(params)
    return out


def tool_variables(
    condition: Condition, claims: Mapping[str, Any], tool: str, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """The variables a tool rule's condition reads: `claims`, `tool.name`, `tool.arguments`."""
    out: dict[str, Any] = {}
    if condition.reads("claims"):
        out["claims"] = dict(claims)
    if condition.reads("tool.name"):
        out["tool.name"] = tool
    if condition.reads("tool.arguments"):
        out["tool.arguments"] = dict(arguments)
    return out


def _lists(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out
