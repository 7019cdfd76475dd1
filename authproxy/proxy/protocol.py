"""The proxied port's HTTP/1.1 connections: asyncio protocols and llhttp (httptools), nothing per request
but what a request needs.

A connection parses heads with llhttp in its strict mode (it refuses Content-Length with Transfer-Encoding,
a repeated Content-Length, obs-fold, bare CR or LF, a malformed chunk size), applies our own limits on top
(request line, one header field, the number of fields) and hands each request, in order, to the handler as
a ClientExchange. Pipelined requests are parsed as they come and answered one after the other; reading
stops while one waits, so a client cannot queue work faster than it is answered.

A refused head is answered with our JSON (414, 431, 400) and the connection closes: nothing after it is
read. The head timeout doubles as the keep-alive timeout: a connection that has not delivered a complete
head within `head_timeout` seconds (of opening, or of its previous answer) is closed, so trickling header
bytes (slowloris) or sitting idle cannot hold a connection for long.

A client that hangs up cancels its request's handler, which releases the upstream connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

import httptools
from aiohttp import hdrs
from multidict import CIMultiDict, istr

from authproxy.answers.table import OwnAnswer, render_answer
from authproxy.auth.verify import MAX_TOKEN_LENGTH
from authproxy.logs import access_logger
from authproxy.proxy.client_body import BodyStream
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.standards.http import repeats_a_singleton

if TYPE_CHECKING:
    import ssl

__all__ = [
    "HEAD_TIMEOUT",
    "MAX_FIELD_SIZE",
    "MAX_HEADERS",
    "MAX_LINE_SIZE",
    "ClientConnection",
    "Listener",
    "parse_error_answer",
]

# Longer than the 60 s idle timeout of common load balancers in front (AWS ALB, ingress-nginx), so they
# close an idle connection before we do; far longer than any real client needs to send a head.
HEAD_TIMEOUT = 75.0
MAX_LINE_SIZE = 8190  # the request target
# One header line: room for a bearer header or cookie holding the largest token the verifier reads.
MAX_FIELD_SIZE = MAX_TOKEN_LENGTH + 1024
MAX_HEADERS = 128
# A head still incomplete past this many bytes cannot fit the limits above: refused without waiting for the
# field that breaks them to end (llhttp holds a field's bytes until it ends).
_MAX_HEAD = MAX_LINE_SIZE + MAX_HEADERS * (MAX_FIELD_SIZE + 2)

Handler = Callable[[ClientExchange], Awaitable[None]]

# Field names as they go upstream: a name aiohttp knows (hdrs) in its registered spelling, as aiohttp's own
# parser gives it (so `aUTHORIZATION` leaves as `Authorization`), any other as sent. Names are tokens (ASCII).
_SPELLING = {str(v).lower(): str(v) for v in vars(hdrs).values() if isinstance(v, istr)}
_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}
_names: dict[bytes, str] = {}  # raw name -> what goes upstream; bounded, emptied when full
_NAMES_MAX = 512


def _field_name(raw: bytes) -> str:
    name = _names.get(raw)
    if name is None:
        text = raw.decode("latin-1")
        name = _SPELLING.get(text.lower(), text)
        if len(_names) >= _NAMES_MAX:
            _names.clear()
        _names[raw] = name
    return name


class _Refused(Exception):
    """A limit of ours, raised from a parser callback; llhttp reports it as a callback error."""

    def __init__(self, answer: OwnAnswer) -> None:
        super().__init__(answer.detail)
        self.answer = answer


def parse_error_answer(error: BaseException) -> OwnAnswer:
    """Our answer to a head llhttp (or one of our limits) refused."""
    if isinstance(error, httptools.HttpParserCallbackError) and isinstance(error.__context__, _Refused):
        return error.__context__.answer
    if isinstance(error, httptools.HttpParserInvalidMethodError):
        return OwnAnswer.BAD_METHOD
    if isinstance(error, httptools.HttpParserInvalidURLError):
        return OwnAnswer.BAD_REQUEST_TARGET
    return OwnAnswer.MALFORMED_REQUEST


class Listener:
    """The protocol factory of the proxied port, and the set of its open connections (for the drain)."""

    def __init__(self, handler: Handler, *, head_timeout: float = HEAD_TIMEOUT) -> None:
        self.handler = handler
        self.head_timeout = head_timeout
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self._idle = asyncio.Event()

    def __call__(self) -> ClientConnection:
        return ClientConnection(self)

    def closed(self, connection: ClientConnection) -> None:
        self.connections.discard(connection)
        if not any(c.busy for c in self.connections):
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Close idle connections now, the others after their answer; past `grace`, cancel what is left."""
        self.draining = True
        for connection in list(self.connections):
            connection.close_when_idle()
        self._idle.clear()
        if any(c.busy for c in self.connections):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    while any(c.busy for c in self.connections):
                        self._idle.clear()
                        await self._idle.wait()
        for connection in list(self.connections):
            connection.abort()
        tasks = [c.task for c in self.connections if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ClientConnection(asyncio.Protocol):
    """One client connection. httptools calls the on_* methods while `data_received` feeds it."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._peer: str | None = None
        self._scheme = "http"
        self._ssl_object: ssl.SSLObject | None = None
        # the head being parsed
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._in_head = False
        self._body: BodyStream | None = None  # the body being parsed (its request may wait its turn)
        # requests parsed, waiting for their answer, in order; the first is being answered
        self._queue: deque[ClientExchange | OwnAnswer] = deque()
        self.task: asyncio.Task[None] | None = None
        self._upgrade: ClientExchange | None = None  # a request asking to switch protocols, being answered
        self._switched: Callable[[bytes], None] | None = None  # after 101: where the bytes go
        self._switched_closed: Callable[[], None] | None = None
        self._refused = False  # a head was refused: nothing after it is read
        self._closing = False
        self._queue_held = False
        self._next: asyncio.Future[None] | None = None  # the answering task waits on it for a request
        self._holds = 0  # reasons reading is paused (a full body buffer, a queue)
        self._writable = True
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head_due: float | None = None

    @property
    def busy(self) -> bool:
        """A request is being answered (or waits to be)."""
        return bool(self._queue) or self._switched is not None

    # --- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        self._listener.connections.add(self)
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else None
        self._ssl_object = transport.get_extra_info("ssl_object")
        self._scheme = "https" if self._ssl_object is not None else "http"
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._switched is not None:
            self._switched(data)
            return
        if self._upgrade is not None:
            self._upgrade.upgrade_tail = (self._upgrade.upgrade_tail or b"") + data
            return
        if self._refused or self._closing:
            return
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError as error:
            self._refuse(parse_error_answer(error))
            return
        if self._in_head and self._head_bytes > _MAX_HEAD:
            self._refuse(OwnAnswer.HEADER_TOO_LARGE)

    def eof_received(self) -> bool:
        # The client's end of the stream: a client gone and one that only half-closed look alike here, and a
        # request must not hold an upstream connection for a client that left, so both end the connection
        # (its handler is cancelled in connection_lost). HTTP/1.1 clients do not half-close to get an answer.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.transport = None
        if self._body is not None and not self._body.complete:
            self._body.fail(ConnectionResetError("the client went away"))
        if self._switched_closed is not None:
            self._switched_closed()
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the client is gone: its request's upstream connection goes too
        self._wake_writer()
        self._listener.closed(self)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._wake_writer()

    # --- httptools callbacks ------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._fields = []

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE_SIZE:
            raise _Refused(OwnAnswer.REQUEST_LINE_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > MAX_FIELD_SIZE:
            raise _Refused(OwnAnswer.HEADER_TOO_LARGE)
        if len(self._fields) >= MAX_HEADERS:
            raise _Refused(OwnAnswer.TOO_MANY_HEADERS)
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        parser = self._parser
        version = _VERSIONS.get(parser.get_http_version())
        if (
            version is None
        ):  # llhttp reads any digit pair: HTTP/2.0 in an HTTP/1 request line is not one of ours
            raise _Refused(OwnAnswer.MALFORMED_REQUEST)
        # Trailing whitespace is not part of a value (RFC 9110 §5.5); llhttp drops only the leading.
        headers: CIMultiDict[str] = CIMultiDict(
            [(_field_name(n), v.rstrip(b" \t").decode("utf-8", "surrogateescape")) for n, v in self._fields]
        )
        if repeats_a_singleton(n for n, _ in self._fields):
            raise _Refused(OwnAnswer.MALFORMED_REQUEST)
        if "Host" not in headers and version != (1, 0):
            raise _Refused(OwnAnswer.MALFORMED_REQUEST)  # RFC 9112 §3.2: an HTTP/1.1 request names its host
        coding = headers.get("Transfer-Encoding")  # one at most (SINGLETON_FIELDS)
        if coding is not None and [t.strip().lower() for t in coding.split(",")] != ["chunked"]:
            # RFC 9112 §6.3: a request whose final coding is not chunked cannot be framed; and chunked is the
            # only coding we read, so anything else is a body the upstream might frame otherwise.
            raise _Refused(OwnAnswer.MALFORMED_REQUEST)
        chunked = coding is not None
        body = self._body = BodyStream(self._hold)
        length = headers.get("Content-Length")
        exchange = ClientExchange(
            self,
            parser.get_method().decode("ascii"),
            self._url.decode("utf-8", "surrogateescape"),
            version,
            headers,
            body,
            keep_alive=parser.should_keep_alive() and not self._listener.draining,
            body_exists=chunked or (length is not None and length != "0"),
            remote=self._peer,
            scheme=self._scheme,
            ssl_object=self._ssl_object,
        )
        self._enqueue(exchange)

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.feed(body)

    def on_message_complete(self) -> None:
        if self._body is not None:
            self._body.feed_eof()
            self._body = None

    # --- what the handler's exchange calls (client_exchange.ClientLink) -----------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("the client went away")
        if self._writable:
            return
        waiter = self._drain_waiter = self._loop.create_future()
        await waiter
        if self.transport is None:
            raise ConnectionResetError("the client went away")

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def switch(self, receive: Callable[[bytes], None], closed: Callable[[], None]) -> bytes:
        """After a 101: the connection's bytes go to `receive` (a WebSocket reader); returns those that came
        with or after the upgrade request's head."""
        exchange = self._upgrade
        self._upgrade = None
        self._switched, self._switched_closed = receive, closed
        self._stop_timer()
        return (exchange.upgrade_tail or b"") if exchange is not None else b""

    def hold(self, on: bool) -> None:
        """Stop (True) or resume (False) reading for a reader that is behind; calls pair up."""
        self._hold(on)

    def close(self) -> None:
        self._close()

    def close_when_idle(self) -> None:
        """Draining: close now if idle; else the answers under way say `Connection: close` and the
        connection closes after them."""
        for item in self._queue:
            if isinstance(item, ClientExchange) and not item.started:
                item.keep_alive = False
        if not self.busy and self.transport is not None:
            self.transport.close()
        self._closing = True

    # --- requests in order --------------------------------------------------------------------------------

    def _enqueue(self, item: ClientExchange | OwnAnswer) -> None:
        self._queue.append(item)
        self._cancel_timer()  # a whole head (or a refusal) came: the head timer stops until the queue is done
        if self.task is None:
            self.task = self._loop.create_task(self._answer_queue())
        elif (waiter := self._next) is not None:
            self._next = None
            waiter.set_result(None)  # the task answering this connection waits for its next request
        elif len(self._queue) == 2 and not self._queue_held:
            self._queue_held = True
            self._hold(True)  # one answer ahead of it: read no more until it is done

    async def _answer_queue(self) -> None:
        """The connection's requests in order, for as long as it is kept alive: one task per connection."""
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        break
                    self._arm_timer()
                    self._next = self._loop.create_future()
                    await self._next
                    continue
                item = self._queue[0]
                if isinstance(item, OwnAnswer):
                    await self._answer_refusal(item)
                    return
                item.handled = True
                await self._listener.handler(item)
                if self.transport is None or not self._serves_on(item):
                    return
                self._queue.popleft()
                if self._queue_held and len(self._queue) <= 1:
                    self._queue_held = False
                    self._hold(False)
                if item is self._upgrade:  # refused to switch: what came after its head is HTTP again
                    self._upgrade = None
                    if item.upgrade_tail:
                        self.data_received(item.upgrade_tail)
        finally:
            self.task = None
            self._next = None
        self._close()

    def _serves_on(self, exchange: ClientExchange) -> bool:
        """Whether the connection serves another request after `exchange`'s answer; closes it if not."""
        if self._switched is not None:
            return False  # a WebSocket relay ran on this connection and has ended it
        done = exchange.finished and exchange.keep_alive and not self._listener.draining
        # Asked to switch and did not: a WebSocket client waits for the 101 before sending anything, so what
        # followed is HTTP; after any other protocol (h2c) the client may have switched at once: not read.
        if exchange is self._upgrade and not _is_websocket(exchange):
            done = False
        if not done:
            self._close()
            return False
        if not exchange.content.complete:
            exchange.content.discard()  # its body is dropped as it comes: the next head follows it
        return True

    def _upgraded(self, tail: bytes) -> None:
        """llhttp stopped at a request asking to switch protocols; it is the last one queued."""
        exchange = self._queue[-1] if self._queue else None
        if not isinstance(exchange, ClientExchange):
            self._refuse(OwnAnswer.MALFORMED_REQUEST)
            return
        exchange.upgrade_tail = tail
        self._upgrade = exchange

    def _refuse(self, answer: OwnAnswer) -> None:
        self._refused = True
        body = self._body
        if body is not None:
            last = self._queue[-1] if self._queue else None
            if isinstance(last, ClientExchange) and last.content is body and not last.handled:
                # Its framing broke before its handler ran: the request is the refusal, nothing goes upstream.
                self._queue.pop()
            body.fail(ConnectionResetError("the request's framing is malformed"))
        self._enqueue(answer)

    async def _answer_refusal(self, answer: OwnAnswer) -> None:
        if answer.status >= 500:
            access_logger().error("error below the proxy handler")
        access_logger().info(
            "request", status=answer.status, decision="deny", error=answer.error, outcome="refused_by_parser"
        )
        rendered = render_answer(answer)
        head = (
            f"HTTP/1.1 {rendered.status} {_reason(rendered.status)}\r\n"
            + "".join(f"{n}: {v}\r\n" for n, v in rendered.headers)
            + f"Content-Length: {len(rendered.body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            self.write(head.encode("ascii") + rendered.body)
        self._close()

    # --- reading, timers, closing -------------------------------------------------------------------------

    def _hold(self, on: bool) -> None:
        before = self._holds
        self._holds += 1 if on else -1
        if self.transport is None:
            return
        with contextlib.suppress(RuntimeError, NotImplementedError):
            if before == 0 and self._holds > 0:
                self.transport.pause_reading()
            elif before > 0 and self._holds == 0:
                self.transport.resume_reading()

    def _arm_timer(self) -> None:
        """A head is due within head_timeout from now. One timer per connection, not one per request: it is
        moved by setting the deadline, and re-armed when it fires early."""
        self._head_due = self._loop.time() + self._listener.head_timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._head_due, self._head_timed_out)

    def _cancel_timer(self) -> None:
        self._head_due = None  # nothing is due: the timer, if it fires, does nothing but end

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        due = self._head_due
        if due is None or self.busy:
            return
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._head_timed_out)  # moved since it was set
            return
        self._close()

    def _close(self) -> None:
        self._closing = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)


def _is_websocket(exchange: ClientExchange) -> bool:
    return exchange.headers.get("Upgrade", "").strip().lower() == "websocket"


def _reason(status: int) -> str:
    return {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}.get(
        status, "Internal Server Error"
    )
