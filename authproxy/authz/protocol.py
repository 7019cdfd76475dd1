"""The HTTP decision port's connections (aiohttp's low-level server): what happens to a check before it is
decided. The proxied port has a lean server of its own (proxy/protocol.py); the limits are the same.

aiohttp answers a request its parser refuses with plain text that quotes the offending bytes (a slice of a
token included) and logs a traceback for each one. Here those become our own JSON answers with fixed
phrases: 431 for an oversized header or too many headers, 414 for an oversized request line, 400 for the
rest; and one log line without the request's bytes.

The keep-alive timer doubles as the head timeout: a connection that has not delivered a complete request
head within `head_timeout` seconds (of opening, or of its previous answer) is closed, so trickling header
bytes (slowloris) or sitting idle cannot hold a connection for long.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    HttpProcessingError,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.web_protocol import RequestHandler

from authproxy.answers.table import OwnAnswer, render_answer, respond
from authproxy.logs import access_logger
from authproxy.proxy.protocol import HEAD_TIMEOUT, MAX_FIELD_SIZE, MAX_HEADERS, MAX_LINE_SIZE

__all__ = ["CheckServer", "parse_error_answer"]

# aiohttp has no type of its own for "too many headers": both of its parsers raise a plain BadHttpMessage
# with this exact message (tests/unit/proxy/test_protocol.py feeds them real bytes to pin it).
_TOO_MANY_HEADERS = "Too many headers received"


def parse_error_answer(error: BaseException | None) -> OwnAnswer:
    """Our answer to a request aiohttp's parser refused (or to an error escaping the handler)."""
    if isinstance(error, LineTooLong):
        return _line_too_long(error)
    if isinstance(error, HttpProcessingError):
        if type(error) is BadHttpMessage and error.message == _TOO_MANY_HEADERS:
            return OwnAnswer.TOO_MANY_HEADERS
        if isinstance(error, BadHttpMethod):
            return OwnAnswer.BAD_METHOD
        if isinstance(error, InvalidURLError):
            return OwnAnswer.BAD_REQUEST_TARGET
        return OwnAnswer.MALFORMED_REQUEST
    # Not a parse error: the check handler answers its own failures, so this is a bug in the layer below it.
    return OwnAnswer.INTERNAL_ERROR


def _line_too_long(error: LineTooLong) -> OwnAnswer:
    # aiohttp raises the same LineTooLong for the request line and for a header line, and keeps no
    # attribute for the limit: its arguments are (line, limit, actual_size). The limit is the only mark of
    # which line it was, hence MAX_FIELD_SIZE != MAX_LINE_SIZE. str() because the limit's type has varied
    # between aiohttp's parsers and releases (int or str); the test pins today's.
    if str(error.args[1]) == str(MAX_LINE_SIZE):
        return OwnAnswer.REQUEST_LINE_TOO_LONG
    return OwnAnswer.HEADER_TOO_LARGE


class _Connection(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        del status, message  # aiohttp's text quotes the request's own bytes: never sent, never logged
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had already started")
        answer = parse_error_answer(exc)
        if answer.status >= 500:
            self.log_exception("error below the proxy handler", exc_info=exc)
        access_logger().info(
            "request",
            status=answer.status,
            decision="deny",
            error=answer.error,
            outcome="refused_by_parser",
        )
        response = respond(render_answer(answer))
        response.force_close()
        return response


class CheckServer(web.Server):
    """aiohttp's low-level server with _Connection as the protocol of every accepted connection."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        head_timeout: float = HEAD_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            keepalive_timeout=head_timeout,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            max_headers=MAX_HEADERS,
            **kwargs,
        )

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)
