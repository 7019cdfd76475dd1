"""The content step: carries out a Decision's content plan for one allowed request.

Order: the query pins, then the body (read whole up to the rule's bound, only when a pin or an item
names a body field), the owner lookup, and only then the upstream. A refusal (a RequestRejected of the
checks in policy/content/check.py) is raised before a byte is sent upstream. With a response check the
answer is read whole, bounded (over the bound: 502), and a 2xx whose field is not the caller's becomes 404.
"""

from __future__ import annotations

from aiohttp import web

from authproxy.config.model import UpstreamConfig
from authproxy.errors import PayloadTooLarge
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
from authproxy.proxy.forward import Forwarder, Headers, Relayed, continue_upload
from authproxy.proxy.listings import filtered_request_headers

__all__ = ["read_bounded", "run_content"]

_BODY_HEADERS = frozenset({"content-length", "transfer-encoding"})
# The body forwarded on a content route is the proxy's own encoding: the client's framing headers go.
_ENCODING_HEADERS = _BODY_HEADERS | {"content-type", "content-encoding"}


async def read_bounded(request: web.BaseRequest, limit: int) -> bytes:
    """The whole request body, or 413 before more than `limit` bytes are held."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the request body is over {limit} bytes")
    await continue_upload(request)
    data = bytearray()
    while chunk := await request.content.read(limit + 1 - len(data)):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"the request body is over {limit} bytes")
    return bytes(data)


async def run_content(
    request: web.BaseRequest,
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
        headers = [(n, v) for n, v in headers if n.lower() not in _ENCODING_HEADERS]
        headers += [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    lookup = owner_lookup(plan, request.raw_path, body)
    if lookup is not None:
        await _owner_lookup(lookup, plan, (forwarder, upstream, headers))
    if data is None:
        await continue_upload(request)
    if not rule.response:
        return await forwarder.forward(request, upstream, headers, target, data)
    sent = data if data is not None else (request.content if request.body_exists else None)
    status, answer_headers, answer = await forwarder.exchange(
        request.method, target, upstream, filtered_request_headers(headers), sent, rule.max_body
    )
    check_answer(plan, status, answer)
    answer_headers.popall("Content-Length", None)
    answer_headers.popall("Transfer-Encoding", None)
    return Relayed(web.Response(status=status, headers=answer_headers, body=answer), status, "complete")


async def _checked_body(request: web.BaseRequest, plan: ContentPlan) -> Body:
    content_type = body_content_type(
        request.headers.getall("Content-Type", ()), request.headers.getall("Content-Encoding", ())
    )
    return check_body(plan, await read_bounded(request, plan.rule.max_body), content_type)


async def _owner_lookup(
    lookup: Lookup, plan: ContentPlan, via: tuple[Forwarder, UpstreamConfig, Headers]
) -> None:
    forwarder, upstream, headers = via
    lookup_headers = filtered_request_headers([(n, v) for n, v in headers if n.lower() not in _BODY_HEADERS])
    status, _, answer = await forwarder.exchange(
        "GET", lookup.target, upstream, lookup_headers, None, plan.rule.max_body
    )
    check_lookup_answer(lookup, status, answer)
