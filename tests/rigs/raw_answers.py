"""One raw conversation with the proxied port, for the differential corpus: the client's bytes written as
given, the answers read back as they come, split into heads and bodies (1xx, HEAD, 204 and 304 answers have
none), and whether the proxy closed the connection.

Reads are bounded, never slept on: the conversation ends at the proxy's EOF (or reset), after QUIET seconds
without a byte once every request sent has a whole answer, or at DEADLINE when an answer is still incomplete
or missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

import httptools

QUIET = 0.3  # loopback answers follow each other within milliseconds
DEADLINE = 3.0
FIRST_BYTE = 2.0  # between parts: how long to wait for the answer that lets the next part go

_BODILESS = frozenset({204, 304})


@dataclass(frozen=True)
class ParsedAnswer:
    status: int
    error: str | None  # our JSON answers' `error` and `detail`; None for any other body
    detail: str | None


@dataclass(frozen=True)
class ClientSide:
    answers: tuple[ParsedAnswer, ...]
    closed: bool
    unparsed: bytes  # what followed the last whole answer (empty unless an answer broke off)


class _Heads:
    def __init__(self) -> None:
        self.methods: list[str] = []
        self.parser: httptools.HttpRequestParser | None = None

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.methods.append(self.parser.get_method().decode("latin-1"))


def request_methods(data: bytes) -> list[str]:
    """The methods of the requests in `data`, as far as llhttp reads it: which answers carry no body."""
    heads = _Heads()
    heads.parser = httptools.HttpRequestParser(heads)
    with contextlib.suppress(httptools.HttpParserError, httptools.HttpParserUpgrade):
        heads.parser.feed_data(data)
    return heads.methods


def _fields(body: bytes) -> tuple[str | None, str | None]:
    with contextlib.suppress(ValueError):
        document = json.loads(body)
        if isinstance(document, dict) and isinstance(document.get("error"), str):
            detail = document.get("detail")
            return document["error"], detail if isinstance(detail, str) else None
    return None, None


def _dechunk(data: bytes) -> tuple[bytes, int] | None:
    """The chunked body at the start of `data` and where it ends; None while incomplete."""
    body, at = bytearray(), 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        size = int(data[at:end].split(b";")[0], 16)
        at = end + 2
        if size == 0:  # trailers, then the empty line
            close = data.find(b"\r\n\r\n", at - 2)
            return (bytes(body), close + 4) if close >= 0 else None
        if len(data) < at + size + 2:
            return None
        body += data[at : at + size]
        at += size + 2


def parse_answers(data: bytes, methods: list[str], *, eof: bool) -> tuple[list[ParsedAnswer], bytes]:
    """The whole answers at the start of `data` and the bytes after them; `methods` in request order."""
    answers: list[ParsedAnswer] = []
    pending = list(methods)
    rest = data
    while rest:
        head, sep, after = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        names = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        method = "GET" if status < 200 else (pending.pop(0) if pending else "GET")
        if status < 200 or status in _BODILESS or method == "HEAD":
            body, rest = b"", after
        elif "content-length" in names:
            size = int(names["content-length"])
            if len(after) < size:
                break
            body, rest = after[:size], after[size:]
        elif names.get("transfer-encoding", "").lower() == "chunked":
            chunked = _dechunk(after)
            if chunked is None:
                break
            body, rest = chunked[0], after[chunked[1] :]
        elif eof:  # delimited by the close
            body, rest = after, b""
        else:
            break
        answers.append(ParsedAnswer(status, *_fields(body)))
    return answers, rest


def _all_answered(answers: list[ParsedAnswer], rest: bytes, methods: list[str]) -> bool:
    """Every answer so far whole, and at least one final answer per request llhttp reads in what was sent:
    only then is a quiet moment the end (a later answer of a pipeline is not cut off by a slow loop)."""
    finals = sum(1 for a in answers if a.status >= 200)
    return bool(answers) and not rest and finals >= len(methods)


async def _read(reader: asyncio.StreamReader, within: float) -> bytes | None:
    """Up to 64 KiB within `within` seconds; b"" at EOF or reset, None when nothing came."""
    try:
        return await asyncio.wait_for(reader.read(65536), within)
    except TimeoutError:
        return None
    except ConnectionError:
        return b""


async def converse(port: int, parts: list[bytes], *, half_close: bool, methods: list[str]) -> ClientSide:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    received = bytearray()
    closed = False
    try:
        for i, part in enumerate(parts):
            if i and not closed:
                chunk = await _read(reader, FIRST_BYTE)
                closed = chunk == b""
                received += chunk or b""
            with contextlib.suppress(ConnectionError):
                writer.write(part)
                await writer.drain()  # the proxy may answer and close before reading all of it
        if half_close:
            with contextlib.suppress(ConnectionError, OSError):
                writer.write_eof()
        deadline = loop.time() + DEADLINE
        while not closed:
            answers, rest = parse_answers(bytes(received), methods, eof=False)
            left = deadline - loop.time()
            within = min(QUIET, left) if _all_answered(answers, rest, methods) else left
            if within <= 0:
                break
            chunk = await _read(reader, within)
            if chunk is None:
                break
            closed = chunk == b""
            received += chunk
        answers, rest = parse_answers(bytes(received), methods, eof=closed)
        return ClientSide(tuple(answers), closed, rest)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
