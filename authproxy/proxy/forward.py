"""The streamed HTTP relay: requests through the lean upstream client, WebSocket upgrades through aiohttp's.

Before the response starts, a failure is an UpstreamError the server renders (502/504). After it starts, the
only honest signal left is to abort the client connection: a truncated body must never look complete.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from authproxy.config.model import UpstreamConfig
from authproxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from authproxy.proxy.headers import response_headers
from authproxy.proxy.upstream import (
    KEEPALIVE,
    Exchange,
    UpstreamPool,
    UpstreamTarget,
    request_head,
    write_body,
)

__all__ = ["READ_CHUNK", "Forwarder", "Relayed"]

READ_CHUNK = 256 * 1024  # WebSocket and key-fetch reads through aiohttp's client
_WS_MAX_MESSAGE = 16 * 1024 * 1024

Outcome = Literal["complete", "upstream_failed", "client_gone"]
Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Relayed:
    response: web.StreamResponse
    upstream_status: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Upstream:
    """What one UpstreamConfig means for requests, computed once per config (reloads may change it)."""

    config: UpstreamConfig
    base: str  # scheme://host[:port][/base-path] without a trailing slash
    pool: UpstreamPool

    @classmethod
    def of(cls, config: UpstreamConfig) -> _Upstream:
        base = config.url.rstrip("/")
        url = URL(base)
        assert url.host is not None and url.port is not None  # the config checked the URL
        tls = ssl.create_default_context() if url.scheme == "https" else None
        target = UpstreamTarget(
            host=url.host,
            port=url.port,
            host_header=url.raw_authority,
            base_path=url.raw_path.rstrip("/"),
            ssl=tls,
            server_hostname=url.host,
        )
        return cls(config, base, UpstreamPool(target, config.connect_timeout))

    def request_head(self, request: web.BaseRequest, headers: Headers, chunked: bool) -> bytes:
        target = self.pool.target
        return request_head(
            request.method, target.base_path + request.raw_path, target.host_header, headers, chunked
        )

    def url(self, raw_target: str) -> URL:
        # encoded=True: the authorized bytes go out as received, nothing re-quoted or normalised.
        return URL(self.base + raw_target, encoded=True)


def _translate(error: BaseException) -> UpstreamError:
    if isinstance(error, TimeoutError):
        return UpstreamTimeout("the upstream did not answer in time")
    if isinstance(error, aiohttp.ClientConnectorError):
        return UpstreamUnavailable("could not connect to the upstream")
    return UpstreamUnavailable("the upstream closed the connection before answering")


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

    async def forward(self, request: web.BaseRequest, config: UpstreamConfig, headers: Headers) -> Relayed:
        """Relay `request` (raw target, streamed body) and stream the answer back. Raises UpstreamError."""
        _, upstream = self._prepare(config)
        has_body = request.body_exists
        chunked = has_body and request.content_length is None  # the client sent chunked: so do we
        target = upstream.pool.target
        head = request_head(
            request.method, target.base_path + request.raw_path, target.host_header, headers, chunked
        )
        exchange, conn = await upstream.pool.open(config.read_timeout, head_only=request.method == "HEAD")
        writer: asyncio.Task[None] | None = None
        try:
            assert conn.transport is not None
            conn.transport.write(head)
            if has_body:
                writer = asyncio.ensure_future(write_body(conn, exchange, request.content, chunked))
            else:
                exchange.request_sent = True
            status, reason, raw_headers = await exchange.response_head()
            return await _relay(request, exchange, status, reason, raw_headers)
        finally:
            if writer is not None and not writer.done():
                writer.cancel()  # answered (or failed) before the body was sent: the connection is not reused
            exchange.release()

    async def fetch_bounded(
        self, request: web.BaseRequest, config: UpstreamConfig, headers: Headers, limit: int
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """A bodiless request whose whole answer (at most `limit` bytes) is read: for filtered listings."""
        _, upstream = self._prepare(config)
        target = upstream.pool.target
        head = request_head(
            request.method, target.base_path + request.raw_path, target.host_header, headers, False
        )
        exchange, conn = await upstream.pool.open(config.read_timeout, head_only=request.method == "HEAD")
        try:
            assert conn.transport is not None
            conn.transport.write(head)
            exchange.request_sent = True
            status, _, raw_headers = await exchange.response_head()
            body = bytearray()
            while chunk := await exchange.read():
                body += chunk
                if len(body) > limit:
                    raise UpstreamUnavailable("the listing response is too large to filter")
            return status, response_headers(CIMultiDict(raw_headers)), bytes(body)
        finally:
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
            )
        except aiohttp.WSServerHandshakeError as error:
            raise UpstreamUnavailable(
                f"the upstream refused the websocket upgrade ({error.status})"
            ) from error
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _translate(error) from error


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
