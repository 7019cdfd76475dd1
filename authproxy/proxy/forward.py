"""The streamed HTTP relay: requests through the lean upstream client, WebSocket upgrades through aiohttp's.

Before the response starts, a failure is an UpstreamError the server renders (502/504). After it starts, the
only honest signal left is to abort the client connection: a truncated body must never look complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import HttpVersion11, web
from multidict import CIMultiDict
from yarl import URL

from authproxy.config.model import UpstreamConfig
from authproxy.errors import UpstreamError, UpstreamTimeout, UpstreamTlsError, UpstreamUnavailable
from authproxy.proxy.headers import response_headers
from authproxy.proxy.upstream import KEEPALIVE, UpstreamPool, UpstreamTarget, request_head, write_body
from authproxy.proxy.upstream_exchange import Exchange

__all__ = ["READ_CHUNK", "Forwarder", "Relayed", "UpstreamAnswer", "continue_upload"]

READ_CHUNK = 256 * 1024  # WebSocket and key-fetch reads through aiohttp's client
_WS_MAX_MESSAGE = 16 * 1024 * 1024

Outcome = Literal["complete", "upstream_failed", "client_gone"]
Headers = list[tuple[str, str]]
Body = bytes | aiohttp.StreamReader | None  # a whole body, the client's stream, or none


@dataclass(frozen=True, slots=True)
class Relayed:
    response: web.StreamResponse
    upstream_status: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """An answer whose head has arrived; `chunks()` streams its body (UpstreamError when it breaks off)."""

    status: int
    reason: str
    headers: CIMultiDict[str]  # as the upstream sent them, hop-by-hop ones included
    exchange: Exchange

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").partition(";")[0].strip().lower()

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.exchange.read():
            yield chunk


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


def _translate(error: BaseException, upstream: _Upstream) -> UpstreamError:
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        problem = getattr(error.certificate_error, "verify_message", None) or "not trusted"
        return UpstreamTlsError(f"the upstream's TLS certificate was refused: {problem}")
    handshake_reset = (
        # An https upstream that resets while we connect hung up inside the TLS handshake (a reset cannot
        # answer a SYN: that is a refusal), as one does when it wants a client certificate we lack.
        URL(upstream.base).scheme == "https"
        and isinstance(error, aiohttp.ClientConnectorError)
        and isinstance(error.os_error, ConnectionResetError)
    )
    if isinstance(error, aiohttp.ClientSSLError) or handshake_reset:
        return UpstreamTlsError("the TLS handshake with the upstream failed")
    if isinstance(error, TimeoutError):
        return UpstreamTimeout("the upstream did not answer in time")
    if isinstance(error, aiohttp.ClientConnectorError):
        return UpstreamUnavailable("could not connect to the upstream")
    return UpstreamUnavailable("the upstream closed the connection before answering")


async def continue_upload(request: web.BaseRequest) -> None:
    """Answer `Expect: 100-continue` only now, after authorization: a denied client never uploads its body."""
    if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


def _abort(request: web.BaseRequest) -> None:
    if request.transport is not None:
        request.transport.abort()


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
        request: web.BaseRequest,
        config: UpstreamConfig,
        headers: Headers,
        raw_target: str | None = None,
        body: bytes | None = None,
    ) -> Relayed:
        """Relay `request` and stream the answer back. Raises UpstreamError.

        The raw target and the streamed body go as received, unless a content-checked request passes the
        target and the whole body its checks left.
        """
        sent: Body = body if body is not None else (request.content if request.body_exists else None)
        target = raw_target or request.raw_path
        async with self._send(request.method, target, config, headers, sent) as exchange:
            status, reason, raw_headers = await exchange.response_head()
            return await _relay(request, exchange, status, reason, raw_headers)

    async def fetch_bounded(
        self, request: web.BaseRequest, config: UpstreamConfig, headers: Headers, limit: int
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """A bodiless request whose whole answer (at most `limit` bytes) is read: for filtered answers."""
        return await self.exchange(request.method, request.raw_path, config, headers, None, limit)

    async def exchange(
        self, method: str, raw_target: str, config: UpstreamConfig, headers: Headers, data: Body, limit: int
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """One request whose whole answer is read, at most `limit` bytes (over it: UpstreamUnavailable)."""
        async with self._send(method, raw_target, config, headers, data) as exchange:
            status, _, raw_headers = await exchange.response_head()
            answer = bytearray()
            while chunk := await exchange.read():
                answer += chunk
                if len(answer) > limit:
                    raise UpstreamUnavailable("the response is too large to filter or check")
            return status, response_headers(CIMultiDict(raw_headers)), bytes(answer)

    @contextlib.asynccontextmanager
    async def answer(
        self, request: web.BaseRequest, config: UpstreamConfig, headers: Headers, body: bytes | None = None
    ) -> AsyncIterator[UpstreamAnswer]:
        """The upstream's answer to `request` (or to `body`, read already), its body left to the caller."""
        sent: Body = body if body is not None else (request.content if request.body_exists else None)
        async with self._send(request.method, request.raw_path, config, headers, sent) as exchange:
            status, reason, raw_headers = await exchange.response_head()
            yield UpstreamAnswer(status, reason, CIMultiDict(raw_headers), exchange)

    @contextlib.asynccontextmanager
    async def _send(
        self, method: str, raw_target: str, config: UpstreamConfig, headers: Headers, body: Body
    ) -> AsyncIterator[Exchange]:
        """Write the request (head at once, a streamed body alongside) and yield its exchange."""
        _, upstream = self._prepare(config)
        if isinstance(body, bytes):
            # A body read (and maybe rewritten) here goes with its own length, whatever the client declared.
            headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding")]
            headers.append(("Content-Length", str(len(body))))
        # A streamed body without a declared length goes chunked, as the client sent it.
        chunked = isinstance(body, aiohttp.StreamReader) and not any(
            name.lower() == "content-length" for name, _ in headers
        )
        head = upstream.request_head(method, raw_target, headers, chunked)
        exchange, conn = await upstream.pool.open(config.read_timeout, head_only=method == "HEAD")
        writer: asyncio.Task[None] | None = None
        try:
            assert conn.transport is not None
            if isinstance(body, aiohttp.StreamReader):
                conn.transport.write(head)
                writer = asyncio.ensure_future(write_body(conn, exchange, body, chunked))
            else:
                conn.transport.write(head + body if body else head)  # a known body leaves with its head
                exchange.request_sent = True
            yield exchange
        finally:
            if writer is not None and not writer.done():
                writer.cancel()  # answered (or failed) before the body was sent: the connection is not reused
            exchange.release()

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
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _translate(error, upstream) from error


class _CoalescingResponse(web.StreamResponse):
    # aiohttp keeps the header block in its buffer until the first body bytes, so the head and the body
    # of a small answer leave in one socket write; _relay sends the head at once when no body is waiting.
    _send_headers_immediately = False


async def _relay(
    request: web.BaseRequest, exchange: Exchange, status: int, reason: str, raw_headers: Headers
) -> Relayed:
    response = _CoalescingResponse(
        status=status, reason=reason or None, headers=response_headers(CIMultiDict(raw_headers))
    )
    try:
        await response.prepare(request)
        ready = exchange.read_nowait()  # what arrived with the head, without waiting
        if exchange.at_eof():
            await response.write_eof(ready)  # head, body and end together
            return Relayed(response, status, "complete")
        if ready:
            await response.write(ready)
        else:
            request.writer.send_headers()  # nothing yet (an SSE stream): the client gets its head now
    except ConnectionError:
        return Relayed(response, status, "client_gone")
    while True:
        try:
            chunk = await exchange.read()
        except UpstreamError:
            _abort(request)
            return Relayed(response, status, "upstream_failed")
        try:
            if not chunk:
                await response.write_eof()
                return Relayed(response, status, "complete")
            # Written as it arrives: the transport sends at once, so SSE events are never held back.
            await response.write(chunk)
        except ConnectionError:
            return Relayed(response, status, "client_gone")
