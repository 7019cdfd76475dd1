"""parse_error_answer: aiohttp's parser exceptions -> our JSON answers, never quoting the request's bytes."""

from __future__ import annotations

import json

import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, InvalidHeader, InvalidURLError, LineTooLong

from authproxy.proxy.protocol import MAX_FIELD_SIZE, MAX_LINE_SIZE, parse_error_answer
from authproxy.proxy.responses import SERVER, render_answer

SECRET = b"eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln"


@pytest.mark.parametrize(
    ("error", "status", "detail"),
    [
        (LineTooLong(SECRET + b"...", MAX_FIELD_SIZE), 431, "request header fields too large"),
        # aiohttp raises it with a bytearray at run time, whatever its annotation says
        (LineTooLong(bytearray(SECRET), MAX_LINE_SIZE), 414, "request line too long"),  # type: ignore[arg-type]
        (
            LineTooLong(SECRET.decode(), str(MAX_LINE_SIZE)),
            414,
            "request line too long",
        ),  # pure-Python parser
        (BadHttpMessage("Too many headers received"), 431, "too many request header fields"),
        (BadHttpMethod(SECRET.decode()), 400, "malformed or unsupported request method"),
        (InvalidURLError(SECRET.decode()), 400, "malformed request target"),
        (InvalidHeader(SECRET), 400, "malformed HTTP request"),
        (BadHttpMessage(f"Duplicate Content-Length: {SECRET!r}"), 400, "malformed HTTP request"),
    ],
)
def test_parse_error_is_answered_with_a_fixed_phrase(error: Exception, status: int, detail: str) -> None:
    rendered = render_answer(parse_error_answer(error))
    assert rendered.status == status
    assert json.loads(rendered.body) == {"detail": detail, "error": "bad_request"}
    assert SECRET not in rendered.body
    assert dict(rendered.headers) == {"Content-Type": "application/json", "Server": SERVER}


@pytest.mark.parametrize("error", [RuntimeError("boom " + SECRET.decode()), None])
def test_error_below_the_handler_is_an_internal_error(error: Exception | None) -> None:
    rendered = render_answer(parse_error_answer(error))
    assert rendered.status == 500
    assert json.loads(rendered.body) == {"detail": "internal error", "error": "internal_error"}
