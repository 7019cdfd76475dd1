"""The streamed HTTP relay over one pooled client session; the only place aiohttp client errors are read.

Before the response starts, a failure is an UpstreamError the server renders (502/504). After it starts, the
only honest signal left is to abort the client connection: a truncated body must never look complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from authproxy.config.model import UpstreamConfig
from authproxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from authproxy.proxy.headers import response_headers

__all__ = ["READ_CHUNK", "Forwarder", "Relayed"]

READ_CHUNK = 256 * 1024  # large reads: fewer loop turns per byte; flow control bounds what is buffered
_POOL_LIMIT = 1024
# Shorter than the idle timeout of common upstream servers (uvicorn: 5 s), so we close an idle pooled
# connection before the upstream does, instead of racing its close with a POST we cannot retry.
_KEEPALIVE = 4.0
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
    timeout: aiohttp.ClientTimeout

    @classmethod
    def of(cls, config: UpstreamConfig) -> _Upstream:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout, sock_read=config.read_timeout
        )
        return cls(config, config.url.rstrip("/"), timeout)

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
        connector = aiohttp.TCPConnector(limit=_POOL_LIMIT, keepalive_timeout=_KEEPALIVE)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # bytes pass unchanged, Content-Encoding included
            cookie_jar=aiohttp.DummyCookieJar(),
            # The client's own headers are forwarded as they were; we add none of aiohttp's defaults.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            read_bufsize=READ_CHUNK,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _prepare(self, config: UpstreamConfig) -> tuple[aiohttp.ClientSession, _Upstream]:
        if self._session is None:
            raise RuntimeError("Forwarder.start() was not awaited")
        upstream = self._upstream
        if upstream is None or upstream.config is not config:
            upstream = self._upstream = _Upstream.of(config)
        return self._session, upstream

    async def forward(
        self, request: web.BaseRequest, config: UpstreamConfig, headers: Headers, body: bytes | None = None
    ) -> Relayed:
        """Relay `request` (raw target, streamed body, or `body` when it was read already) and stream the
        answer back. Raises UpstreamError."""
        answer = await self.send(request, config, headers, body)
        try:
            return await _relay(request, answer)
        finally:
            answer.close()

    async def send(
        self, request: web.BaseRequest, config: UpstreamConfig, headers: Headers, body: bytes | None = None
    ) -> aiohttp.ClientResponse:
        """The upstream's answer, its body unread (the caller closes it). Raises UpstreamError."""
        session, upstream = self._prepare(config)
        data = body if body is not None else (request.content if request.body_exists else None)
        try:
            return await session.request(
                request.method,
                upstream.url(request.raw_path),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=upstream.timeout,
            )
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _translate(error) from error

    async def fetch_bounded(
        self, request: web.BaseRequest, config: UpstreamConfig, headers: Headers, limit: int
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """A bodiless request whose whole answer (at most `limit` bytes) is read: for filtered listings."""
        session, upstream = self._prepare(config)
        try:
            async with session.request(
                request.method,
                upstream.url(request.raw_path),
                headers=headers,
                allow_redirects=False,
                timeout=upstream.timeout,
            ) as answer:
                body = bytearray()
                async for chunk in answer.content.iter_chunked(READ_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise UpstreamUnavailable("the listing response is too large to filter")
                return answer.status, response_headers(answer.headers), bytes(body)
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _translate(error) from error

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


async def _relay(request: web.BaseRequest, answer: aiohttp.ClientResponse) -> Relayed:
    response = _CoalescingResponse(
        status=answer.status, reason=answer.reason, headers=response_headers(answer.headers)
    )
    content = answer.content
    try:
        await response.prepare(request)
        ready = content.read_nowait(READ_CHUNK)  # what arrived with the head, without waiting
        if content.at_eof():
            await response.write_eof(ready)  # head, body and end together
            return Relayed(response, answer.status, "complete")
        if ready:
            await response.write(ready)
        else:
            request.writer.send_headers()  # nothing yet (an SSE stream): the client gets its head now
    except (aiohttp.ClientError, TimeoutError):
        _abort(request)
        return Relayed(response, answer.status, "upstream_failed")
    except ConnectionError:
        return Relayed(response, answer.status, "client_gone")
    while True:
        try:
            chunk = await content.read(READ_CHUNK)
        except (TimeoutError, aiohttp.ClientError):
            _abort(request)
            return Relayed(response, answer.status, "upstream_failed")
        try:
            if not chunk:
                await response.write_eof()
                return Relayed(response, answer.status, "complete")
            # Written as it arrives: the transport sends at once, so SSE events are never held back.
            await response.write(chunk)
        except ConnectionError:
            return Relayed(response, answer.status, "client_gone")
