"""A lean pooled HTTP/1.1 client for the relay: asyncio protocols and llhttp (httptools), nothing else.

aiohttp's ClientSession builds a request object, a response object, timers and a connector lease per request;
on the proxied path that was most of a request's cost. The relay needs far less: write one head, stream a
body, parse the answer's head into a list, stream its body back with flow control. This module does exactly
that, and is strict where a relay must be:

- one request at a time per connection, and an answer that arrives when none was asked for (pipelined,
  unsolicited, or bytes after the end of a message) makes the connection unusable: it is closed, never
  pooled;
- nothing is ever retried: a request may have reached the upstream as soon as its first byte was written;
- a pooled connection is reused only within KEEPALIVE seconds of its last answer, shorter than the idle
  timeout of common upstream servers, so we close it before the upstream does instead of racing its close
  with a request we could not retry;
- `read_timeout` is the longest gap between bytes from the upstream (agent runs stream for minutes).

WebSocket upgrades and key fetching keep aiohttp's client: they are rare and need its protocol support.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

from authproxy.errors import UpstreamError, UpstreamTimeout, UpstreamTlsError, UpstreamUnavailable
from authproxy.proxy.client_body import BodyStream
from authproxy.proxy.upstream_exchange import Broken, Exchange

__all__ = ["KEEPALIVE", "UpstreamPool", "UpstreamTarget", "connect_failure", "request_head", "write_body"]

KEEPALIVE = 4.0
_MAX_IDLE = 256  # idle connections kept per upstream; more than that are closed when returned
_CLOSED = "the upstream closed the connection before answering"
_CLOSED_MID_BODY = "the upstream closed the connection mid-body"

RawHeaders = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where requests go: computed once per upstream config."""

    host: str
    port: int
    host_header: str  # what the upstream's Host header says (the configured authority)
    base_path: str  # prefix of every request target, without a trailing slash
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None


class _Connection(asyncio.Protocol):
    """One upstream connection. httptools calls the on_* methods while `data_received` feeds it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.alive = True
        self.idle_since = 0.0
        self._exchange: Exchange | None = None
        self._can_write = True
        self._write_waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is None or exchange.complete:
            self._unusable()  # bytes nobody asked for: an unsolicited or pipelined answer
            return
        exchange.last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            exchange.fail(Broken("the upstream sent a malformed response"))
            self._unusable()

    def eof_received(self) -> bool:
        return False  # a half-close from the upstream ends the connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        exchange = self._exchange
        if exchange is not None and not exchange.complete:
            if exchange.close_delimited and exchange.head is not None:
                exchange.finish()  # a body without length or chunking ends with the connection
            else:
                exchange.fail(Broken(_CLOSED if exchange.head is None else _CLOSED_MID_BODY))
        self._wake_writer()

    def pause_writing(self) -> None:
        self._can_write = False

    def resume_writing(self) -> None:
        self._can_write = True
        self._wake_writer()

    # --- httptools callbacks ------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.complete:
            raise httptools.HttpParserError("a second answer to one request")

    def on_status(self, reason: bytes) -> None:
        if self._exchange is not None:
            self._exchange.reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        # After the head, llhttp reports a chunked body's trailer fields here too. They are dropped, never
        # relayed: aiohttp's StreamResponse cannot send trailers, HTTP/1.1 clients and most proxies ignore
        # them, and a trailer must never act as a header (a `Set-Cookie` or `Location` the upstream put
        # after the body would otherwise join the head whenever it arrived in the same read as the body).
        exchange = self._exchange
        if exchange is not None and exchange.head is None:
            exchange.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self._exchange
        if exchange is None:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise httptools.HttpParserError("the upstream switched protocols on a plain request")
            exchange.interim()  # 100 Continue, 103 Early Hints: informational, the answer follows
            return
        exchange.set_head(status, self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        full = exchange is not None and exchange.head is not None and exchange.push(body)
        if full and self.transport is not None:
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.head is not None and not exchange.complete:
            exchange.finish()

    # --- used by Exchange ---------------------------------------------------------------------------------

    def begin(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def resume_reading(self) -> None:
        if self.transport is not None and self.alive:
            self.transport.resume_reading()

    async def drain(self) -> None:
        while not self._can_write and self.alive:
            self._write_waiter = self._loop.create_future()
            await self._write_waiter
        if not self.alive:
            raise Broken(_CLOSED)

    def _wake_writer(self) -> None:
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _unusable(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()

    def end(self, reusable: bool, *, reset_parser: bool = False) -> bool:
        """The exchange is over: True when the connection may serve another request."""
        self._exchange = None
        if reset_parser:
            # llhttp cannot be told a response answers HEAD: it still expects the body its length announces.
            # A new parser starts the next answer clean.
            self._parser = httptools.HttpResponseParser(self)
        if reusable and self.alive:
            self.idle_since = self._loop.time()
            return True
        self._unusable()
        return False


def connect_failure(error: OSError, *, tls: bool) -> UpstreamError:
    """What a failure to reach the upstream means, whichever client met it (this pool, or aiohttp's for
    WebSocket upgrades, whose ClientConnectorError carries the same OSError)."""
    if isinstance(error, TimeoutError):
        return UpstreamTimeout("the upstream did not answer in time")
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or "not trusted"
        return UpstreamTlsError(f"the upstream's TLS certificate was refused: {reason}")
    # A reset cannot answer a SYN (that is a refusal): over TLS, the upstream hung up inside the handshake,
    # as one does when it wants a client certificate we lack.
    if isinstance(error, ssl.SSLError) or (tls and isinstance(error, ConnectionResetError)):
        return UpstreamTlsError("the TLS handshake with the upstream failed")
    return UpstreamUnavailable("could not connect to the upstream")


class UpstreamPool:
    """Keep-alive connections to one upstream, most recently used first."""

    def __init__(self, target: UpstreamTarget, connect_timeout: float | None) -> None:
        self.target = target
        self._connect_timeout = connect_timeout
        self._idle: deque[_Connection] = deque()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self.target
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    target.host,
                    target.port,
                    ssl=target.ssl,
                    server_hostname=target.server_hostname if target.ssl is not None else None,
                )
        except OSError as error:  # TimeoutError and ssl.SSLError included
            raise connect_failure(error, tls=target.ssl is not None) from error
        return conn

    def _take_idle(self, now: float) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.alive and now - conn.idle_since < KEEPALIVE:
                return conn
            conn.end(False)
        return None

    def put_back(self, conn: _Connection) -> None:
        if len(self._idle) >= _MAX_IDLE:
            conn.end(False)
            return
        self._idle.append(conn)

    async def open(self, read_timeout: float | None, *, head_only: bool) -> tuple[Exchange, _Connection]:
        loop = asyncio.get_running_loop()
        conn = self._take_idle(loop.time()) or await self._connect()
        exchange = Exchange(lambda: self.put_back(conn), conn, loop, read_timeout, head_only)
        conn.begin(exchange)
        return exchange, conn

    def close(self) -> None:
        while self._idle:
            self._idle.pop().end(False)


def request_head(method: str, target: str, host: str, headers: RawHeaders, chunked: bool) -> bytes:
    """The request line and headers in one buffer. Refuses a CR or LF inside a name or value."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    text = "\r\n".join(lines)
    # Each line break in `text` must be one of ours: a value holding CR or LF would split a header.
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        raise UpstreamUnavailable("a request header holds a line break")
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")


async def write_body(conn: _Connection, exchange: Exchange, chunks: BodyStream, chunked: bool) -> None:
    """Stream the request body; stops early when the upstream has already answered in full."""
    transport = conn.transport
    assert transport is not None
    try:
        while not exchange.complete:
            data = await chunks.readany()
            if not data:
                break
            transport.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            await conn.drain()
        else:
            return  # answered before the body was sent: the connection is not reused (request_sent False)
        if chunked:
            transport.write(b"0\r\n\r\n")
        exchange.request_sent = True
    except Broken:
        return  # the exchange reports the failure to the reader
    except ConnectionError:
        # The client's body broke off (it went away, or its framing was malformed): the upstream must not
        # take what came as a whole request, so its connection ends here and the exchange fails.
        exchange.fail(Broken("the client's body broke off"))
        transport.abort()
