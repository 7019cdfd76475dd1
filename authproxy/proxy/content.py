"""The content step: carries out a Decision's content plan for one allowed request.

Order: the query pins, then the body (read whole up to the rule's bound, only when a pin or an item
names a body field), the owner lookup, and only then the upstream. A refusal (ContentRejected,
InsufficientScope) is raised before a byte is sent upstream. With a response check the answer is read
whole, bounded (over the bound: 502), and a 2xx whose field is not the caller's becomes 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from authproxy.config.content import ContentRule, OwnerLookup
from authproxy.config.model import UpstreamConfig
from authproxy.config.route_form import template_names
from authproxy.errors import (
    EntityForbidden,
    EntityNotFound,
    MethodNotAllowed,
    NotCallersOwn,
    UpstreamUnavailable,
)
from authproxy.policy.content.fields import Body, json_value, malformed, pin_body, pin_query
from authproxy.policy.content.items import check_items
from authproxy.policy.content.plan import ContentPlan
from authproxy.proxy.forward import Forwarder, Headers, Relayed, read_body, streamed_body
from authproxy.proxy.listings import filtered_request_headers
from authproxy.standards.json_text import ANSWER_MAX_DEPTH, read_json
from authproxy.standards.media import Unreadable

__all__ = ["run_content"]

_BODY_HEADERS = frozenset({"content-length", "transfer-encoding"})
# The body forwarded on a content route is the proxy's own encoding: the client's framing headers go.
_ENCODING_HEADERS = _BODY_HEADERS | {"content-type", "content-encoding"}


async def run_content(
    request: web.BaseRequest,
    plan: ContentPlan,
    forwarder: Forwarder,
    upstream: UpstreamConfig,
    headers: Headers,
) -> Relayed:
    """The relayed answer; raises RequestRejected (the stage's refusal) / UpstreamError."""
    rule = plan.rule
    if rule.response and request.method == "HEAD":
        # A HEAD answer has no body to check, and its status alone would tell whose the entity is.
        raise MethodNotAllowed("HEAD cannot be answered on a response-checked route")
    target = request.raw_path
    for pin in rule.pins:
        if pin.field.where == "query":
            target = pin_query(target, pin.field, _caller(plan, pin.claim))
    data: bytes | None = None
    body: Body | None = None
    if plan.reads_body:
        body = await _checked_body(request, plan)
        content_type, data = body.encode()
        headers = [(n, v) for n, v in headers if n.lower() not in _ENCODING_HEADERS]
        headers += [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    if rule.owner is not None:
        await _owner_lookup(rule.owner, plan, request, body, (forwarder, upstream, headers))
    if not rule.response:
        return await forwarder.forward(request, upstream, headers, target, data)
    sent = data if data is not None else await streamed_body(request)
    answer = await forwarder.fetch(
        upstream,
        request.method,
        target,
        filtered_request_headers(headers),
        sent,
        rule.max_body,
        reads=_success,
    )
    if _success(answer.status):
        _check_response(rule, plan, answer.body)
    response = web.Response(status=answer.status, headers=answer.headers, body=answer.body)
    return Relayed(response, answer.status, "complete")


def _success(status: int) -> bool:
    return 200 <= status < 300  # the statuses whose answer a response check reads


def _caller(plan: ContentPlan, claim: str) -> str:
    value = plan.claim(claim)
    if value is None:  # the gate refuses such tokens already; kept so no path pins to nothing
        raise NotCallersOwn(f"the token carries no {claim} to pin to")
    return value


async def _checked_body(request: web.BaseRequest, plan: ContentPlan) -> Body:
    content_types = request.headers.getall("Content-Type", ())
    if len(content_types) > 1:
        raise malformed("the request gives Content-Type more than once")
    body = Body(await read_body(request, plan.rule.max_body), content_types[0] if content_types else "")
    check_items(plan, body)
    for pin in plan.rule.pins:
        if pin.field.where != "query":
            pin_body(body, pin.field, _caller(plan, pin.claim))
    return body


async def _owner_lookup(
    owner: OwnerLookup,
    plan: ContentPlan,
    request: web.BaseRequest,
    body: Body | None,
    via: tuple[Forwarder, UpstreamConfig, Headers],
) -> None:
    forwarder, upstream, headers = via
    fields = {"query": parse_qsl(request.raw_path.partition("?")[2], keep_blank_values=True)}
    if body is not None and any(n.startswith("form.") for n in template_names(owner.target)):
        fields["form"] = body.form()
    target = _fill(owner.target, plan, fields, encode=True)
    expected = [(ref, _fill(value, plan, fields, encode=False)) for ref, value in owner.expect]
    lookup_headers = filtered_request_headers([(n, v) for n, v in headers if n.lower() not in _BODY_HEADERS])
    found = await forwarder.fetch(
        upstream, "GET", target, lookup_headers, None, plan.rule.max_body, reads=lambda status: status == 200
    )
    if found.status >= 500:
        raise UpstreamUnavailable(f"the owner lookup answered {found.status}")
    refusal = EntityForbidden if owner.status == EntityForbidden.status else EntityNotFound
    if found.status != 200:
        raise refusal("not found")
    document = _json_response(found.body)
    for ref, value in expected:
        if json_value(document, ref) != value:
            raise refusal("not found")


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


def _json_response(body: bytes) -> Any:
    try:
        return read_json(body, what="the upstream answer", max_depth=ANSWER_MAX_DEPTH)
    except Unreadable as bad:
        raise UpstreamUnavailable(f"{bad.reason}, and cannot be checked") from None


def _check_response(rule: ContentRule, plan: ContentPlan, body: bytes) -> None:
    document = _json_response(body)
    for check in rule.response:
        if json_value(document, check.field) != plan.claim(check.claim):
            raise EntityNotFound("not found")
