"""Dry run on the proxied port: what the checks after the gate would have said, with the request left whole.

In dry run the upstream decides, so it gets the client's request as it came: the target and the body are
never rewritten (a pin does not fill a field), and a body a check reads is read once, bounded by the rule's
`max_body`, and forwarded byte for byte. The checks that need no upstream run on it (the ones `authproxy
explain` runs); those that need the upstream's answer (owner lookups, response checks) are not tried, since
either would send the request's consequences upstream before we had decided. The one request dry run cannot
pass is a body with no declared length that runs over `max_body`: its bytes are spent, so it is refused as
without dry run (a declared length over it is refused before a byte is read, and passes).
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

from authproxy.config.model import Config
from authproxy.errors import RequestRejected
from authproxy.policy.content.check import body_content_type, check_body, check_target
from authproxy.policy.content.plan import ContentPlan
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.forward import read_body

__all__ = ["body_touched", "dry_run_checks", "unverified_token"]


async def dry_run_checks(
    request: ClientExchange, plan: ContentPlan
) -> tuple[bytes | None, RequestRejected | None]:
    """(the body read, or None when it still streams; the refusal we would have answered, or None).

    Raises RequestRejected when the body cannot be read whole (before a byte of it is read, except for an
    undeclared length over `max_body`)."""
    try:
        check_target(plan, request.method, request.raw_path)
    except RequestRejected as refused:
        return None, refused  # decided on the target alone: the body streams through unread
    if not plan.reads_body:
        return None, None
    content_type = body_content_type(
        request.headers.getall("Content-Type", ()), request.headers.getall("Content-Encoding", ())
    )
    data = await read_body(request, plan.rule.max_body)
    try:
        check_body(plan, data, content_type)
    except RequestRejected as refused:
        return data, refused
    return data, None


def body_touched(request: ClientExchange) -> bool:
    """Whether a byte of the client's body was read: past that, the request cannot go as it came."""
    return request.content.total_bytes > 0


def unverified_token(config: Config, headers: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    """The client's token header, when `forward.strip_authorization` removed it: a token we could not
    verify still reaches the upstream in dry run, whose own checks decide (identity headers are never set
    from it)."""
    if not config.forward.strip_authorization:
        return []
    return [(config.jwt.header, v) for v in headers.getall(config.jwt.header, ())]
