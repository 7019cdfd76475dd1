"""The streamed HTTP relay: requests through the lean upstream client, WebSocket upgrades through aiohttp's.

`Forwarder.send` is the one way a request goes upstream: it yields the answer once its head has arrived.
On top of it, `forward` relays the answer as it streams and `fetch` reads it whole, bounded (for answers we
filter or check). `read_body` is the one bounded read of a client's body (for requests we check).

Before the response starts, a failure is an UpstreamError the server renders (502/504). After it starts, the
only honest signal left is to abort the client connection: a truncated body must never look complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from authproxy.config.model import UpstreamConfig
from authproxy.errors import MalformedBody, PayloadTooLarge, UpstreamError, UpstreamUnavailable
from authproxy.proxy.client_body import BodyStream
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.headers import relayed_headers, response_headers
from authproxy.proxy.upstream import (
    KEEPALIVE,
    UpstreamPool,
    UpstreamTarget,
    connect_failure,
    request_head,
    write_body,
)
from authproxy.proxy.upstream_exchange import Exchange
from authproxy.standards.http import identity_only

__all__ = [
    "READ_CHUNK",
    "Fetched",
    "Forwarder",
    "Relayed",
    "UpstreamAnswer",
    "read_body",
    "streamed_body",
]

READ_CHUNK = 256 * 1024  # WebSocket and key-fetch reads through aiohttp's client
_WS_MAX_MESSAGE = 16 * 1024 * 1024

Outcome = Literal["complete", "upstream_failed", "client_gone"]
Headers = list[tuple[str, str]]
Body = bytes | BodyStream | None  # a whole body, the client's stream, or none


@dataclass(frozen=True, slots=True)
class Relayed:
    """How an answer went: the upstream's status, and whether it reached the client whole."""

    upstream_status: int
    outcome: Outcome


def _every_status(status: int) -> bool:
    del status
    return True


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """An answer whose head has arrived; its body is the caller's to stream, relay or read whole."""

    status: int
    reason: str
    raw_headers: list[tuple[str, str]]  # as the upstream sent them, hop-by-hop ones included
    exchange: Exchange

    @property
    def headers(self) -> CIMultiDict[str]:
        # Built when asked (filtered answers): the relay copies the pairs once, straight into its answer.
        return CIMultiDict(self.raw_headers)

    @property
    def compressed(self) -> bool:
        return not identity_only(v for k, v in self.raw_headers if k.lower() == "content-encoding")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (UpstreamError when it breaks off)."""
        while chunk := await self.exchange.read():
            yield chunk

    async def read_whole(self, limit: int, *, reads: Callable[[int], bool] = _every_status) -> bytes:
        """The whole body, at most `limit` bytes. UpstreamUnavailable over it, and when the body of a status
        the caller reads (`reads(status)`) is compressed: we would check other bytes than the client reads.
        An empty body is nothing to read (a 304 names the encoding of a body it does not carry)."""
        body = bytearray()
        while chunk := await self.exchange.read():
            body += chunk
            if len(body) > limit:
                raise UpstreamUnavailable("the response is too large to filter or check")
        if body and self.compressed and reads(self.status):
            raise UpstreamUnavailable("the response is compressed and cannot be filtered or checked")
        return bytes(body)


@dataclass(frozen=True, slots=True)
class Fetched:
    """An answer read whole; `headers` without hop-by-hop ones or framing (the server writes its own)."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Upstream:
    """What one UpstreamConfig means for requests, computed once per config (reloads may change it)."""

    config: UpstreamConfig
    base: str  # scheme://host[:port][/base-path] without a trailing slash
    pool: UpstreamPool
    ssl: ssl.SSLContext | bool  # for WebSocket upgrades through aiohttp; True: system CAs
    server_name: str | None  # SNI and certificate name when it differs from the URL's host

    @classmethod
    def of(cls, config: UpstreamConfig) -> _Upstream:
        base = config.url.rstrip("/")
        url = URL(base)
        assert url.host is not None and url.port is not None  # the config checked the URL
        # A reload builds a new context, so a new pool opens new connections with the new certificates.
        tls = config.tls
        context: ssl.SSLContext | None = None
        if tls is not None:
            context = tls.context
        elif url.scheme == "https":
            context = ssl.create_default_context()  # the system CAs, as for any https client
        server_name = tls.server_name if tls is not None else None
        target = UpstreamTarget(
            host=url.host,
            port=url.port,
            host_header=url.raw_authority,
            base_path=url.raw_path.rstrip("/"),
            ssl=context,
            server_hostname=server_name or url.host,
        )
        ws_ssl: ssl.SSLContext | bool = tls.context if tls is not None else True
        return cls(config, base, UpstreamPool(target, config.connect_timeout), ws_ssl, server_name)

    def request_head(self, method: str, raw_target: str, headers: Headers, chunked: bool) -> bytes:
        target = self.pool.target
        return request_head(method, target.base_path + raw_target, target.host_header, headers, chunked)

    def url(self, raw_target: str) -> URL:
        # encoded=True: the authorized bytes go out as received, nothing re-quoted or normalised.
        return URL(self.base + raw_target, encoded=True)


async def streamed_body(request: ClientExchange) -> Body:
    """The client's body, to be streamed upstream as it arrives (None when it has none). `Expect:
    100-continue` is answered only now, when the body is wanted: a denied client never uploads it."""
    await request.send_continue()
    return request.content if request.body_exists else None


async def read_body(request: ClientExchange, limit: int) -> bytes:
    """The client's whole body, to be checked: MalformedBody when it is compressed (the upstream would read
    other bytes than we checked), PayloadTooLarge over `limit` (before a byte is read when declared)."""
    if not identity_only(request.headers.getall("Content-Encoding", ())):
        raise MalformedBody("a compressed request body cannot be checked on this route")
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the request body is over {limit} bytes")
    await request.send_continue()
    data = bytearray()
    while chunk := await request.content.read(limit + 1 - len(data)):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"the request body is over {limit} bytes")
    return bytes(data)


class Forwarder:
    """Owns the pooled ClientSession: `start()` on startup, `close()` on cleanup."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._upstream: _Upstream | None = None

    async def start(self) -> None:
        # WebSocket upgrades only; every other request goes through the lean pool in _Upstream.
        connector = aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # bytes pass unchanged, Content-Encoding included
            cookie_jar=aiohttp.DummyCookieJar(),
            # The client's own headers are forwarded as they were; we add none of aiohttp's defaults.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            read_bufsize=READ_CHUNK,
        )

    async def close(self) -> None:
        if self._upstream is not None:
            self._upstream.pool.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _prepare(self, config: UpstreamConfig) -> tuple[aiohttp.ClientSession, _Upstream]:
        if self._session is None:
            raise RuntimeError("Forwarder.start() was not awaited")
        upstream = self._upstream
        if upstream is None or upstream.config is not config:
            if upstream is not None:
                upstream.pool.close()  # a reload changed the upstream: idle connections to the old one go
            upstream = self._upstream = _Upstream.of(config)
        return self._session, upstream

    async def forward(
        self,
        request: ClientExchange,
        config: UpstreamConfig,
        headers: Headers,
        raw_target: str | None = None,
        body: bytes | None = None,
    ) -> Relayed:
        """Relay `request` and stream the answer back. Raises UpstreamError.

        The raw target and the streamed body go as received, unless a content-checked request passes the
        target and the whole body its checks left.
        """
        sent: Body = body if body is not None else await streamed_body(request)
        target = raw_target or request.raw_path
        answer, writer = await self._open(config, request.method, target, headers, sent)
        try:
            return await _relay(request, answer)
        finally:
            _close(answer.exchange, writer)

    async def fetch(
        self,
        config: UpstreamConfig,
        method: str,
        raw_target: str,
        headers: Headers,
        body: Body,
        limit: int,
        *,
        reads: Callable[[int], bool] = _every_status,
    ) -> Fetched:
        """One request whose whole answer is read, bounded (UpstreamAnswer.read_whole). `headers` are sent
        as given: an answer to be read is asked for without ranges, in identity encoding (listings.py)."""
        async with self.send(config, method, raw_target, headers, body) as answer:
            data = await answer.read_whole(limit, reads=reads)
            out = response_headers(answer.headers)
            for name in ("Content-Length", "Transfer-Encoding"):
                out.popall(name, None)
            return Fetched(answer.status, out, data)

    @contextlib.asynccontextmanager
    async def send(
        self, config: UpstreamConfig, method: str, raw_target: str, headers: Headers, body: Body
    ) -> AsyncIterator[UpstreamAnswer]:
        """The one way a request goes upstream: the head at once, a streamed body alongside; yields the
        answer once its head has arrived. Raises UpstreamError. The connection is pooled again (or closed)
        when the block ends."""
        answer, writer = await self._open(config, method, raw_target, headers, body)
        try:
            yield answer
        finally:
            _close(answer.exchange, writer)

    async def _open(
        self, config: UpstreamConfig, method: str, raw_target: str, headers: Headers, body: Body
    ) -> tuple[UpstreamAnswer, asyncio.Task[None] | None]:
        """`send` without the context manager (the streamed relay calls it once per request): the answer
        and the task writing a streamed body, for `_close`."""
        _, upstream = self._prepare(config)
        if isinstance(body, bytes):
            # A body read (and maybe rewritten) here goes with its own length, whatever the client declared.
            headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding")]
            headers.append(("Content-Length", str(len(body))))
        # A streamed body without a declared length goes chunked, as the client sent it.
        chunked = isinstance(body, BodyStream) and not any(
            name.lower() == "content-length" for name, _ in headers
        )
        head = upstream.request_head(method, raw_target, headers, chunked)
        exchange, conn = await upstream.pool.open(config.read_timeout, head_only=method == "HEAD")
        writer: asyncio.Task[None] | None = None
        try:
            assert conn.transport is not None
            if isinstance(body, BodyStream):
                conn.transport.write(head)
                writer = asyncio.ensure_future(write_body(conn, exchange, body, chunked))
            else:
                conn.transport.write(head + body if body else head)  # a known body leaves with its head
                exchange.request_sent = True
            status, reason, raw_headers = await exchange.response_head()
        except BaseException:
            _close(exchange, writer)
            raise
        return UpstreamAnswer(status, reason, raw_headers, exchange), writer

    async def open_websocket(
        self, config: UpstreamConfig, raw_target: str, headers: Headers, protocols: tuple[str, ...]
    ) -> aiohttp.ClientWebSocketResponse:
        """The upstream side of a WebSocket relay. Raises UpstreamError (a refused upgrade included)."""
        session, upstream = self._prepare(config)
        try:
            return await session.ws_connect(
                upstream.url(raw_target),
                protocols=protocols,
                headers=headers,
                autoclose=False,  # the relay forwards the close code and reason itself
                max_msg_size=_WS_MAX_MESSAGE,
                ssl=upstream.ssl,
                server_hostname=upstream.server_name,
            )
        except aiohttp.WSServerHandshakeError as error:
            raise UpstreamUnavailable(
                f"the upstream refused the websocket upgrade ({error.status})"
            ) from error
        except (aiohttp.ClientConnectorError, TimeoutError) as error:  # aiohttp's timeouts are TimeoutErrors
            cause = error.os_error if isinstance(error, aiohttp.ClientConnectorError) else error
            raise connect_failure(cause, tls=upstream.pool.target.ssl is not None) from error
        except aiohttp.ClientError as error:
            raise UpstreamUnavailable("the upstream closed the connection before answering") from error


def _close(exchange: Exchange, writer: asyncio.Task[None] | None) -> None:
    if writer is not None and not writer.done():
        writer.cancel()  # answered (or failed) before the body was sent: the connection is not reused
    exchange.release()


async def _relay(request: ClientExchange, answer: UpstreamAnswer) -> Relayed:
    exchange, status = answer.exchange, answer.status
    headers = relayed_headers(answer.raw_headers)
    reason = answer.reason or None
    try:
        ready = exchange.read_nowait()  # what arrived with the head, without waiting
        if exchange.at_eof():
            await request.respond(status, headers, ready, reason, sized=False)  # head, body, end: one write
            return Relayed(status, "complete")
        # Nothing yet (an SSE stream): the client gets its head now; else with the first bytes.
        await request.start(status, headers, reason, ready)
    except ConnectionError:
        return Relayed(status, "client_gone")
    while True:
        try:
            chunk = await exchange.read()
        except UpstreamError:
            request.abort()
            return Relayed(status, "upstream_failed")
        try:
            if not chunk:
                await request.finish()
                return Relayed(status, "complete")
            # Written as it arrives: the transport sends at once, so SSE events are never held back.
            await request.write(chunk)
        except ConnectionError:
            return Relayed(status, "client_gone")
