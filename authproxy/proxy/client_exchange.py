"""One request on the proxied port and its answer: what the handler reads and how it answers.

The request side is what the parser gave: method, raw target, headers (values decoded as UTF-8 with
surrogate escapes, so they go upstream byte for byte), the body as a BodyStream. The answer side writes the
head itself and frames the body by the one rule below, then relays bytes under the transport's flow control.

Framing of an answer (RFC 9112 §6): none after HEAD, 1xx, 204 and 304; the given `Content-Length`, else the
length of a whole answer, else chunked to an HTTP/1.1 client, else (HTTP/1.0) the end of the connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.answers.table import Rendered
from authproxy.proxy.client_body import BodyStream

if TYPE_CHECKING:
    import ssl

__all__ = ["ClientExchange", "ClientLink", "reason_phrase"]

Headers = Iterable[tuple[str, str]]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


def reason_phrase(status: int) -> str:
    """The status line's reason phrase: the registered one (RFC 9110 §15), empty for an unregistered code."""
    return _PHRASES.get(status, "")


# Written by _head by the framing rule, never taken from the fields given.
_FRAMING = frozenset({"transfer-encoding", "connection"})


class ClientLink(Protocol):
    """The connection an exchange answers on (protocol.py's ClientConnection)."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...
    def hold(self, on: bool) -> None:
        """Stop (True) or resume (False) reading the connection; calls pair up."""

    def switch(self, receive: Callable[[bytes], None], closed: Callable[[], None]) -> bytes:
        """After a 101: the connection's bytes go to `receive`; returns those already read."""


class _Date:
    """The `Date` field, formatted once a second (RFC 9110 §6.6.1: an origin server with a clock sends it)."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
        return cls.value


class ClientExchange:
    """The request as parsed, and the one answer to it."""

    __slots__ = (
        "_chunked",
        "_continued",
        "_no_body",
        "answer_headers",
        "body_exists",
        "content",
        "content_length",
        "expects_continue",
        "finished",
        "handled",
        "headers",
        "keep_alive",
        "link",
        "method",
        "output_size",
        "raw_path",
        "remote",
        "scheme",
        "ssl_object",
        "status",
        "upgrade_tail",
        "version",
    )

    def __init__(
        self,
        link: ClientLink,
        method: str,
        raw_path: str,
        version: tuple[int, int],
        headers: CIMultiDict[str],
        content: BodyStream,
        *,
        keep_alive: bool,
        chunked: bool,
        remote: str | None,
        scheme: str,
        ssl_object: ssl.SSLObject | None,
    ) -> None:
        self.link = link
        self.method = method
        self.raw_path = raw_path
        self.version = version
        self.headers = CIMultiDictProxy(headers)
        self.content = content
        self.keep_alive = keep_alive
        length = headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self.body_exists = chunked or bool(self.content_length)  # as llhttp frames it: a length of 0 is none
        self.remote = remote
        self.scheme = scheme
        self.ssl_object = ssl_object
        expect = headers.get("Expect", "")
        self.expects_continue = expect.lower() == "100-continue" and version >= (1, 1)
        self._continued = False
        self.answer_headers: tuple[tuple[str, str], ...] = ()  # set over any copy on whatever answer goes
        self.output_size = 0  # bytes of the answer written: past 0, only an abort can signal a failure
        self.status = 0
        self.finished = False
        self.handled = False  # the handler has begun on it (the connection sets it)
        self._chunked = False
        self._no_body = False
        self.upgrade_tail: bytes | None = (
            None  # bytes after an upgrade request's head (set by the connection)
        )

    @property
    def started(self) -> bool:
        return self.output_size > 0

    async def send_continue(self) -> None:
        """`100 Continue`, once, when the body is wanted: a client refused before then never uploads it."""
        if self.expects_continue and not self._continued and not self.started:
            self._continued = True
            self.link.write(_CONTINUE)
            await self.link.drain()

    @property
    def upload_refused(self) -> bool:
        """A client that asked to be invited to upload, and was answered without the invitation."""
        return self.expects_continue and not self._continued

    # --- answering ----------------------------------------------------------------------------------------

    async def respond(
        self, status: int, headers: Headers, body: bytes, reason: str | None = None, *, sized: bool = True
    ) -> None:
        """A whole answer in one write; `sized=False` frames it as a stream would be (a relayed answer keeps
        the upstream's framing: chunked stays chunked)."""
        self._whole(status, headers, body, reason, sized=sized)
        await self.link.drain()

    async def render(self, rendered: Rendered) -> None:
        await self.respond(rendered.status, rendered.headers, rendered.body)

    def render_now(self, rendered: Rendered) -> None:
        """`render` without waiting for the client to take it (the last resort after a bug)."""
        self._whole(rendered.status, rendered.headers, rendered.body, None)

    def _whole(
        self, status: int, headers: Headers, body: bytes, reason: str | None, *, sized: bool = True
    ) -> None:
        self._write(
            self._head(status, reason, headers, len(body) if sized else None) + self._framed(body, last=True)
        )
        self.finished = True

    async def start(
        self, status: int, headers: Headers, reason: str | None = None, first: bytes = b""
    ) -> None:
        """The head (and the first bytes of the body, in the same write); the body follows by `write`."""
        self._write(self._head(status, reason, headers, None) + self._framed(first, last=False))
        await self.link.drain()

    async def write(self, data: bytes) -> None:
        if data:
            self._write(self._framed(data, last=False))
            await self.link.drain()

    async def finish(self, data: bytes = b"") -> None:
        self._write(self._framed(data, last=True))
        self.finished = True
        await self.link.drain()

    def abort(self) -> None:
        """Tell the client the answer is not whole: the connection ends without a proper end of message."""
        self.keep_alive = False
        self.link.abort()

    def _write(self, data: bytes) -> None:
        self.output_size += len(data)
        self.link.write(data)

    def _framed(self, data: bytes, *, last: bool) -> bytes:
        if self._no_body:
            return b""
        if not self._chunked:
            return data
        out = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        return out + b"0\r\n\r\n" if last else out

    def _head(self, status: int, reason: str | None, headers: Headers, whole: int | None) -> bytes:
        """The status line and fields: ours (answer_headers) over any copy given, framed by the rule above."""
        self.status = status
        lines = [f"HTTP/{self.version[0]}.{self.version[1]} {status} {reason or reason_phrase(status)}"]
        sized = self._fields(lines, headers)
        no_body = self._no_body = self.method == "HEAD" or status < 200 or status in (204, 304)
        if status < 200 or status in (204, 304):
            if sized:
                lines = [line for line in lines if not line[:15].lower().startswith("content-length:")]
        elif not sized and whole is not None:
            lines.append(f"Content-Length: {whole}")
        elif not sized and not no_body:
            if self.version >= (1, 1):
                self._chunked = True
                lines.append("Transfer-Encoding: chunked")
            else:
                self.keep_alive = False  # the end of the connection is the end of the body
        lines.append(self._connection())
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")

    def _fields(self, lines: list[str], headers: Headers) -> bool:
        """Append the fields to `lines` (ours over any copy given; framing ones left to _head, which writes
        its own), `Date` when none is given; whether a `Content-Length` was given."""
        ours = self.answer_headers
        replaced = {n.lower() for n, _ in ours} if ours else _FRAMING
        sized = dated = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in _FRAMING or lowered in replaced:
                continue
            if lowered == "content-length":
                sized = True
            elif lowered == "date":
                dated = True
            lines.append(f"{name}: {value}")
        lines += [f"{name}: {value}" for name, value in ours]
        if not dated:
            lines.append(f"Date: {_Date.now()}")
        return sized

    def _connection(self) -> str:
        """The `Connection` field (if any) and the end of the head."""
        if self.upload_refused and not self.content.complete:
            self.keep_alive = False  # the body never came: what follows cannot be told apart from it
        if not self.keep_alive and self.version >= (1, 1):
            return "Connection: close\r\n\r\n"
        if self.keep_alive and self.version < (1, 1):
            return "Connection: keep-alive\r\n\r\n"
        return "\r\n"
