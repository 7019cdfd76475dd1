"""One client connection of the proxied port: asyncio protocol and llhttp (httptools), nothing per request
but what a request needs.

Heads are parsed as they come (request_head.py says what is refused) and each request goes, in order, to the
owner's handler as a ClientExchange, from one task per connection. Pipelined requests are parsed as they come
and answered one after the other; reading stops while one waits, so a client cannot queue work faster than it
is answered. A refused head is answered with our JSON (414, 431, 400) and the connection closes: nothing
after it is read.

The head timeout doubles as the keep-alive timeout: a connection that has not delivered a complete head
within `head_timeout` seconds (of opening, or of its previous answer) is closed, so trickling header bytes
(slowloris) or sitting idle cannot hold a connection for long. A client that hangs up cancels its request's
handler, which releases the upstream connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from authproxy.answers.table import OwnAnswer
from authproxy.logs import access_logger
from authproxy.proxy.client_body import BodyStream
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.client_websocket import is_websocket_upgrade
from authproxy.proxy.request_head import (
    MAX_FIELD_SIZE,
    MAX_HEAD,
    MAX_HEADERS,
    MAX_LINE_SIZE,
    HeadRefused,
    parse_error_answer,
    read_fields,
    refusal,
)

if TYPE_CHECKING:
    import ssl

__all__ = ["ClientConnection", "ConnectionOwner", "Handler"]

Handler = Callable[[ClientExchange], Awaitable[None]]


class ConnectionOwner(Protocol):
    """What a connection asks of the listener that accepted it (protocol.py's Listener)."""

    handler: Handler
    head_timeout: float
    draining: bool
    connections: set[ClientConnection]

    def closed(self, connection: ClientConnection) -> None: ...


class ClientConnection(asyncio.Protocol):
    """One client connection. httptools calls the on_* methods while `data_received` feeds it."""

    def __init__(self, owner: ConnectionOwner) -> None:
        self._owner = owner
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
        # Writers waiting for the transport to take more: each its own future (a WebSocket relay writes to the
        # client from both of its pumps), all woken together.
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._head_due: float | None = None

    @property
    def busy(self) -> bool:
        """A request is being answered (or waits to be)."""
        return bool(self._queue) or self._switched is not None

    # --- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        self._owner.connections.add(self)
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
        if self._refused:
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
        if self._in_head and self._head_bytes > MAX_HEAD:
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
        self._owner.closed(self)

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
            raise HeadRefused(OwnAnswer.REQUEST_LINE_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > MAX_FIELD_SIZE:
            raise HeadRefused(OwnAnswer.HEADER_TOO_LARGE)
        if len(self._fields) >= MAX_HEADERS:
            raise HeadRefused(OwnAnswer.TOO_MANY_HEADERS)
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        parser = self._parser
        version, headers, chunked = read_fields(parser.get_http_version(), self._fields)
        body = self._body = BodyStream(self._hold)
        exchange = ClientExchange(
            self,
            parser.get_method().decode("ascii"),
            self._url.decode("utf-8", "surrogateescape"),
            version,
            headers,
            body,
            keep_alive=parser.should_keep_alive() and not self._owner.draining,
            chunked=chunked,
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
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)
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
                await self._owner.handler(item)
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
        done = exchange.finished and exchange.keep_alive and not self._owner.draining
        # Asked to switch and did not: a WebSocket client waits for the 101 before sending anything, so what
        # followed is HTTP; after any other protocol (h2c) the client may have switched at once: not read.
        if exchange is self._upgrade and not is_websocket_upgrade(exchange.method, exchange.headers):
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
        with contextlib.suppress(ConnectionError):
            self.write(refusal(answer))
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
        self._head_due = self._loop.time() + self._owner.head_timeout
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
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
