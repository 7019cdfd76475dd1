"""Headers of ours that every answer to one request carries, set over any copy the answer already has.

The allowed answer of a rate-limited route carries the `RateLimit` fields whichever way it was made:
relayed from the upstream (streamed, filtered or content-checked), or refused after the gate (a 502 when
the upstream is down still spent a token). The handler sets them once, after the decision; every response
of the request picks them up as it is prepared, through aiohttp's per-request prepare hook (the one
`web.Request` uses for `on_response_prepare`), after the upstream's headers are in place.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from authproxy.limits.headers import allowed_fields
from authproxy.policy.decision import Decision

__all__ = ["AnsweredRequest", "make_request", "set_rate_limit_fields"]


class AnsweredRequest(web.BaseRequest):
    answer_headers: tuple[tuple[str, str], ...] = ()

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        for name, value in self.answer_headers:
            response.headers[name] = value  # replaces every copy of the name (an upstream's included)


def make_request(
    message: RawRequestMessage,
    payload: StreamReader,
    protocol: RequestHandler,
    writer: AbstractStreamWriter,
    task: asyncio.Task[None],
) -> web.BaseRequest:
    """web.Server's `request_factory`: an AnsweredRequest where aiohttp would make a BaseRequest."""
    return AnsweredRequest(message, payload, protocol, writer, task, asyncio.get_running_loop())


def set_rate_limit_fields(request: web.BaseRequest, decision: Decision) -> None:
    """The allowed decision's RateLimit fields go on every answer to `request` (none: no limit counted it)."""
    if isinstance(request, AnsweredRequest):
        request.answer_headers = allowed_fields(decision.rate_limit)
