"""The content step: carries out a Decision's content plan for one allowed request.

Order: the query pins, then the body (read whole up to the rule's bound, only when a pin or an item
names a body field), the owner lookup, and only then the upstream. A refusal (a RequestRejected of the
checks in policy/content/check.py) is raised before a byte is sent upstream. With a response check the
answer is read whole, bounded (over the bound: 502), and a 2xx whose field is not the caller's becomes 404.
"""

from __future__ import annotations

from authproxy.config.model import UpstreamConfig
from authproxy.policy.content.check import (
    Lookup,
    body_content_type,
    check_answer,
    check_body,
    check_lookup_answer,
    check_target,
    owner_lookup,
)
from authproxy.policy.content.fields import Body
from authproxy.policy.content.plan import ContentPlan
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.forward import Forwarder, Headers, Relayed, read_body, streamed_body
from authproxy.proxy.headers import with_own_body
from authproxy.proxy.listings import filtered_request_headers

__all__ = ["run_content"]

_BODY_HEADERS = frozenset({"content-length", "transfer-encoding"})


async def run_content(
    request: ClientExchange,
    plan: ContentPlan,
    forwarder: Forwarder,
    upstream: UpstreamConfig,
    headers: Headers,
) -> Relayed:
    """The relayed answer; raises RequestRejected (the stage's refusal) / UpstreamError.

    The checks are policy/content/check.py's, the ones `authproxy explain` and `authproxy test` run; here
    they are carried out around the reads and the exchanges with the upstream."""
    rule = plan.rule
    target = check_target(plan, request.method, request.raw_path)
    data: bytes | None = None
    body: Body | None = None
    if plan.reads_body:
        body = await _checked_body(request, plan)
        content_type, data = body.encode()
        headers = with_own_body(headers, content_type)  # the proxy's encoding, never the client's bytes
    lookup = owner_lookup(plan, request.raw_path, body)
    if lookup is not None:
        await _owner_lookup(lookup, plan, (forwarder, upstream, headers))
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
    check_answer(plan, answer.status, answer.body)
    await request.respond(answer.status, answer.headers.items(), answer.body)
    return Relayed(answer.status, "complete")


def _success(status: int) -> bool:
    return 200 <= status < 300  # the statuses whose answer a response check reads


async def _checked_body(request: ClientExchange, plan: ContentPlan) -> Body:
    content_type = body_content_type(
        request.headers.getall("Content-Type", ()), request.headers.getall("Content-Encoding", ())
    )
    return check_body(plan, await read_body(request, plan.rule.max_body), content_type)


async def _owner_lookup(
    lookup: Lookup, plan: ContentPlan, via: tuple[Forwarder, UpstreamConfig, Headers]
) -> None:
    forwarder, upstream, headers = via
    lookup_headers = filtered_request_headers([(n, v) for n, v in headers if n.lower() not in _BODY_HEADERS])
    found = await forwarder.fetch(
        upstream,
        "GET",
        lookup.target,
        lookup_headers,
        None,
        plan.rule.max_body,
        reads=lambda status: status == 200,
    )
    check_lookup_answer(lookup, found.status, found.body)
