"""The decision port's parse_error_answer: aiohttp's parser exceptions -> our JSON answers, never quoting the
request's bytes."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.http_parser import HttpRequestParserC, HttpRequestParserPy

from authproxy.answers.table import SERVER, OwnAnswer, render_answer
from authproxy.authz.protocol import parse_error_answer
from authproxy.proxy.protocol import MAX_FIELD_SIZE, MAX_HEADERS, MAX_LINE_SIZE

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
        (BadHttpMessage("Too many headers received, and then some"), 400, "malformed HTTP request"),
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


_HEADS = [
    (b"GET /" + b"a" * MAX_LINE_SIZE + b" HTTP/1.1\r\n\r\n", OwnAnswer.REQUEST_LINE_TOO_LONG),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_FIELD_SIZE + b"\r\n\r\n", OwnAnswer.HEADER_TOO_LARGE),
    (b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * (MAX_HEADERS + 1) + b"\r\n", OwnAnswer.TOO_MANY_HEADERS),
    (b"G\x00T / HTTP/1.1\r\n\r\n", OwnAnswer.BAD_METHOD),
]


@pytest.mark.parametrize("parser", [HttpRequestParserPy, HttpRequestParserC])
@pytest.mark.parametrize(("head", "answer"), _HEADS)
async def test_aiohttp_parsers_raise_what_parse_error_answer_tells_apart(
    parser: type[HttpRequestParserPy], head: bytes, answer: OwnAnswer
) -> None:
    # Pins aiohttp's behaviour that protocol.py relies on without a type to go by: which limit a LineTooLong
    # names, and the exact message of its "too many headers" BadHttpMessage, for both of its parsers.
    limits = {"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE, "max_headers": MAX_HEADERS}
    reader = parser(object(), asyncio.get_running_loop(), 2**16, **limits)  # type: ignore[arg-type]
    with pytest.raises(HttpProcessingError) as caught:
        reader.feed_data(head)
    assert parse_error_answer(caught.value) is answer
