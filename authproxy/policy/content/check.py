"""A content plan's checks, as pure functions: the one implementation of what the plan asks of a request and
of the upstream's answers.

The proxied port (proxy/content.py) carries them out around its reads and its exchanges with the upstream;
`authproxy explain` and `authproxy test` run the same functions on a request given on the command line or in
a case file, so the three refuse alike. Order, as on the proxied port: the method, the query pins, the body
(its media type, its bound, its strict reading, its item scopes, its pins), the owner lookup, the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from authproxy.config.content import FieldRef, OwnerLookup
from authproxy.errors import (
    EntityForbidden,
    EntityNotFound,
    MethodNotAllowed,
    NotCallersOwn,
    PayloadTooLarge,
    UpstreamUnavailable,
)
from authproxy.policy.conditions import judge
from authproxy.policy.content.fields import Body, json_value, malformed, pin_body, pin_query
from authproxy.policy.content.items import check_items
from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.content.templates import template_names
from authproxy.standards.http import identity_only
from authproxy.standards.json_text import ANSWER_MAX_DEPTH, read_json
from authproxy.standards.media import Unreadable

__all__ = [
    "Lookup",
    "body_content_type",
    "check_answer",
    "check_body",
    "check_lookup_answer",
    "check_request",
    "check_target",
    "owner_lookup",
]


@dataclass(frozen=True, slots=True)
class Lookup:
    """The owner lookup of one request: GET `target`; unless it answers 200 with every `expected` field,
    the request is refused with `refusal` and never forwarded."""

    target: str
    expected: tuple[tuple[FieldRef, str], ...]
    refusal: type[EntityNotFound]

    def describe(self) -> str:
        expects = " and ".join(f"{ref} = {value}" for ref, value in self.expected)
        return f"GET {self.target} expects 200" + (f" with {expects}" if expects else "")


def check_target(plan: ContentPlan, method: str, raw_target: str) -> str:
    """The target to forward, its query pins held; raises MethodNotAllowed, MalformedBody, NotCallersOwn."""
    if plan.rule.response and method == "HEAD":
        # A HEAD answer has no body to check, and its status alone would tell whose the entity is.
        raise MethodNotAllowed("HEAD cannot be answered on a response-checked route")
    target = raw_target
    for pin in plan.rule.pins:
        if pin.field.where == "query":
            target = pin_query(target, pin.field, _caller(plan, pin.claim))
    return target


def body_content_type(content_types: Sequence[str], content_encodings: Sequence[str]) -> str:
    """The one Content-Type of a body the plan reads ("" when none), known before a byte of it is read."""
    if not identity_only(content_encodings):
        raise malformed("a compressed request body cannot be checked on this route")
    if len(content_types) > 1:
        raise malformed("the request gives Content-Type more than once")
    return content_types[0] if content_types else ""


def check_body(plan: ContentPlan, data: bytes, content_type: str) -> Body:
    """The body read strictly, its item scopes checked, its pins held, then the route's body condition
    judged on it (on what the upstream will receive); what goes upstream is its `encode()`. Raises
    PayloadTooLarge, MalformedBody, InsufficientScope, NotCallersOwn, ConditionFailed."""
    if len(data) > plan.rule.max_body:  # the proxied port stops reading here already
        raise PayloadTooLarge(f"the request body is over {plan.rule.max_body} bytes")
    body = Body(data, content_type)
    check_items(plan, body)
    for pin in plan.rule.pins:
        if pin.field.where != "query":
            pin_body(body, pin.field, _caller(plan, pin.claim))
    if plan.when is not None:
        judge(plan.when.condition, {**plan.when.variables, "body": body.value()})
    return body


def check_request(
    plan: ContentPlan,
    method: str,
    raw_target: str,
    data: bytes | None,
    content_types: Sequence[str] = (),
    content_encodings: Sequence[str] = (),
) -> tuple[str, Body | None]:
    """Every check the plan makes before the upstream is asked anything: (target, body to forward).

    `data` None: the body is not known (`explain` without `--body`), and its checks are left out; the body is
    None too when the plan does not read it. Raises the stage's refusals (RequestRejected)."""
    target = check_target(plan, method, raw_target)
    if not plan.reads_body or data is None:
        return target, None
    return target, check_body(plan, data, body_content_type(content_types, content_encodings))


def owner_lookup(plan: ContentPlan, raw_target: str, body: Body | None) -> Lookup | None:
    """The plan's owner lookup for this request, its templates filled; MalformedBody when a field it names
    is missing or given twice."""
    owner = plan.rule.owner
    if owner is None:
        return None
    fields = {"query": parse_qsl(raw_target.partition("?")[2], keep_blank_values=True)}
    if body is not None and any(n.startswith("form.") for n in template_names(owner.target)):
        fields["form"] = body.form()
    target = _fill(owner.target, plan, fields, encode=True)
    expected = tuple((ref, _fill(value, plan, fields, encode=False)) for ref, value in owner.expect)
    return Lookup(target, expected, _refusal(owner))


def check_lookup_answer(lookup: Lookup, status: int, answer: bytes) -> None:
    """Raise unless the owner lookup's answer shows the entity is the caller's: UpstreamUnavailable for a
    failed lookup (5xx, or an answer that is not JSON), `lookup.refusal` otherwise."""
    if status >= 500:
        raise UpstreamUnavailable(f"the owner lookup answered {status}")
    if status != 200:
        raise lookup.refusal("not found")
    document = _json_answer(answer)
    for ref, value in lookup.expected:
        if json_value(document, ref) != value:
            raise lookup.refusal("not found")


def check_answer(plan: ContentPlan, status: int, answer: bytes) -> None:
    """The response checks: a 2xx answer whose field is not the caller's is refused (EntityNotFound, 404);
    other statuses pass as they are. UpstreamUnavailable when a 2xx answer is not JSON."""
    if not 200 <= status < 300:
        return
    document = _json_answer(answer)
    for check in plan.rule.response:
        if json_value(document, check.field) != plan.claim(check.claim):
            raise EntityNotFound("not found")


def _refusal(owner: OwnerLookup) -> type[EntityNotFound]:
    return EntityForbidden if owner.status == EntityForbidden.status else EntityNotFound


def _caller(plan: ContentPlan, claim: str) -> str:
    value = plan.claim(claim)
    if value is None:  # the gate refuses such tokens already; kept so no path pins to nothing
        raise NotCallersOwn(f"the token carries no {claim} to pin to")
    return value


def _fill(template: str, plan: ContentPlan, fields: dict[str, list[tuple[str, str]]], *, encode: bool) -> str:
    params = dict(plan.params)
    out = template
    for name in template_names(template):
        kind, _, rest = name.partition(".")
        if kind in ("query", "form"):
            found = [v for n, v in fields.get(kind, ()) if n == rest]
            if len(found) != 1 or not found[0]:
                raise malformed(f"{kind} field '{rest}' is required (once) on this route")
            value = found[0]
        elif kind == "caller":
            value = _caller(plan, rest)
        else:
            value = params[name]
        out = out.replace("{" + name + "}", quote(value, safe="") if encode else value, 1)
    return out


def _json_answer(body: bytes) -> Any:
    try:
        return read_json(body, what="the upstream answer", max_depth=ANSWER_MAX_DEPTH)
    except Unreadable as bad:
        raise UpstreamUnavailable(f"{bad.reason}, and cannot be checked") from None
