"""Content plans: what the gate attaches to an allow when the matched rule reads the body, the query or the
response, with the caller's ids already bound.

The gate decides; the content step (proxy/content.py) only carries the plan out, and refuses only when
the request's own content breaks it: a pinned field naming someone else, an item the caller holds no
scope for, a body that is malformed or over the bound, an entity the owner lookup does not find under
the caller, a response field that is not the caller's. `describe()` is what `explain` prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from authproxy.config.conditions import Condition
from authproxy.config.content import ContentRule
from authproxy.config.model import RouteRule
from authproxy.errors import ConfigError, InsufficientScope, Problem
from authproxy.policy.content.templates import template_names
from authproxy.policy.patterns import parse_pattern
from authproxy.policy.reads import Reads

__all__ = ["BodyCondition", "ContentPlan", "ContentPlans"]

_NO_RULE = ContentRule()  # a plan that only judges a body condition (or an admin's: content rules skip it)


@dataclass(frozen=True, slots=True)
class BodyCondition:
    """A route's `when` that reads `body`: judged once the body is read, with the other variables it reads
    already built by the gate."""

    condition: Condition
    variables: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ContentPlan:
    rule: ContentRule
    caller: tuple[tuple[str, str | None], ...]  # ("user_id", id), ("session_id", id)
    params: tuple[tuple[str, str], ...]  # path parameters bound by the route
    granted: frozenset[str]  # the caller's scopes, for item scopes named in the body
    when: BodyCondition | None = None  # the route's condition on the body, judged after the pins are held

    label: ClassVar[str] = "content checks"

    @property
    def reads(self) -> Reads:
        rule = self.rule
        found = Reads.QUERY if any(p.field.where == "query" for p in rule.pins) else Reads.NOTHING
        if self.reads_body:
            found |= Reads.BODY
        if rule.owner is not None:
            found |= Reads.LOOKUP
        if rule.response:
            found |= Reads.ANSWER
        return found

    @property
    def reads_body(self) -> bool:
        owner = self.rule.owner
        form_lookup = owner is not None and any(n.startswith("form.") for n in template_names(owner.target))
        pinned = any(p.field.where != "query" for p in self.rule.pins)
        return form_lookup or bool(self.rule.items) or pinned or self.when is not None

    def claim(self, name: str) -> str | None:
        for key, value in self.caller:
            if key == name:
                return value
        return None

    def describe(self) -> str:
        parts = [f"pin {p.field} = {self.claim(p.claim)}" for p in self.rule.pins]
        parts += [f"item {i.field} needs {' '.join(i.scopes)}" for i in self.rule.items]
        if self.rule.owner is not None:
            parts.append(f"owner lookup GET {self.rule.owner.target} before forwarding")
        parts += [f"response {r.field} must be {self.claim(r.claim)}" for r in self.rule.response]
        if self.when is not None:
            parts.append(f"when {self.when.condition.describe()} on the body")
        read = [w for w, on in (("body", self.reads_body), ("response", bool(self.rule.response))) if on]
        bound = [f"{' and '.join(read)} read up to {self.rule.max_body} bytes"] if read else []
        return "; ".join(parts + bound)


class ContentPlans:
    """Route key (as written) -> content rule, for the rules that have one; built with the runtime."""

    __slots__ = ("_body_conditions", "_rules")

    def __init__(self, rules: Mapping[str, ContentRule], body_conditions: bool = False) -> None:
        self._rules = dict(rules)
        self._body_conditions = body_conditions  # some route's `when` reads the body: its plans bind here

    def __bool__(self) -> bool:
        return bool(self._rules) or self._body_conditions

    @classmethod
    def build(cls, routes: Sequence[RouteRule]) -> ContentPlans:
        """Check every template against its route; raise ConfigError listing what is wrong."""
        problems: list[Problem] = []
        rules: dict[str, ContentRule] = {}
        body_conditions = any(r.when is not None and r.when.reads_body for r in routes)
        for route in routes:
            if route.content is None:
                continue
            problem = _check_templates(route, route.content)
            if problem is not None:
                problems.append(Problem(route.file, route.line, f"route {route.key!r}: {problem}"))
                continue
            rules[route.key] = route.content
        if problems:
            raise ConfigError(problems)
        return cls(rules, body_conditions)

    def bind(
        self,
        allowed: Allowed,
        admin_scope: str | None,
        condition: tuple[Condition, Mapping[str, Any]] | None = None,
    ) -> ContentPlan | None:
        """The content plan of the allowed route, bound to its caller; None when it has none. The admin scope
        skips the content rule, never the route's body `condition` (its other variables already built).

        Raises InsufficientScope when the rule pins to a user id the token does not carry (Agno: 403).
        """
        rule = self._rules.get(allowed.route or "")
        if admin_scope is not None and admin_scope in allowed.scopes:
            rule = None
        if rule is None and condition is None:
            return None
        if rule is not None and not allowed.subject and _uses_user_id(rule):  # an empty id names nobody
            raise InsufficientScope(
                "the token carries no user id, and this route is scoped to its caller", (), ()
            )
        caller = (("user_id", allowed.subject), ("session_id", allowed.session_id))
        when = BodyCondition(*condition) if condition is not None else None
        return ContentPlan(rule or _NO_RULE, caller, allowed.params, frozenset(allowed.scopes), when)


class Allowed(Protocol):
    """What binding reads of the gate's allow (a Decision)."""

    @property
    def route(self) -> str | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def scopes(self) -> tuple[str, ...]: ...
    @property
    def params(self) -> tuple[tuple[str, str], ...]: ...


def _uses_user_id(rule: ContentRule) -> bool:
    claims = [p.claim for p in rule.pins] + [r.claim for r in rule.response]
    owner = rule.owner
    return "user_id" in claims or (
        owner is not None and "caller.user_id" in _owner_names(owner.target, owner.expect)
    )


def _owner_names(target: str, expect: tuple[tuple[object, str], ...]) -> list[str]:
    return template_names(target) + [n for _, value in expect for n in template_names(value)]


def _check_templates(route: RouteRule, rule: ContentRule) -> str | None:
    if rule.owner is None:
        return None
    params = {n for n in parse_pattern(route.key).param_names if n is not None}
    for name in _owner_names(rule.owner.target, rule.owner.expect):
        kind, dot, rest = name.partition(".")
        if dot and kind in ("query", "form") and rest:
            continue
        if dot and kind == "caller" and rest in ("user_id", "session_id"):
            continue
        if not dot and name in params:
            continue
        return (
            f"owner: '{{{name}}}' is not a path parameter of the route, "
            "{query.NAME}, {form.NAME}, {caller.user_id} or {caller.session_id}"
        )
    return None
