"""Relay of an authorized WebSocket upgrade: upstream first, then the client, then both directions.

The upstream is connected before the client is accepted, so a refused upgrade can still be answered with a
plain 502. Ping/pong are answered per hop by aiohttp; data frames and the close code and reason are relayed.
When the decision carries a message grant, each client text frame is judged before it may reach the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSCloseCode, WSMsgType
from multidict import CIMultiDictProxy

from authproxy.config.model import UpstreamConfig
from authproxy.logs import get_logger
from authproxy.policy.ws_messages import MessageGrant, judge_message
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.client_websocket import ClientSocket
from authproxy.proxy.forward import Forwarder

__all__ = ["relay_websocket"]

# 1005/1006/1015 describe a close but may never be sent in a close frame.
_UNSENDABLE = frozenset({1004, 1005, 1006, 1015})
_ENDED = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR})

Socket = ClientSocket | aiohttp.ClientWebSocketResponse
_log = get_logger("authproxy.websocket")


def _protocols(headers: CIMultiDictProxy[str]) -> tuple[str, ...]:
    values = headers.getall("Sec-WebSocket-Protocol", ())
    return tuple(p for v in values for token in v.split(",") if (p := token.strip()))


async def relay_websocket(
    request: ClientExchange,
    forwarder: Forwarder,
    upstream: UpstreamConfig,
    headers: list[tuple[str, str]],
    grant: MessageGrant | None = None,
) -> None:
    """Connect upstream (raises UpstreamError), accept the client, pump until one side closes."""
    remote = await forwarder.open_websocket(upstream, request.raw_path, headers, _protocols(request.headers))
    try:
        client = ClientSocket(request)
        await client.accept(remote.protocol)  # the upstream's choice among the client's subprotocols
        await _Relay(client, remote, grant).run()
    finally:
        await remote.close(code=WSCloseCode.GOING_AWAY)  # a no-op unless the relay was cut short


class _Relay:
    def __init__(
        self, client: ClientSocket, remote: aiohttp.ClientWebSocketResponse, grant: MessageGrant | None
    ) -> None:
        self.client = client
        self.remote = remote
        self.grant = grant

    async def run(self) -> None:
        # If a side vanishes without a close frame, the other learns why: the client went away, or the
        # upstream failed like a bad gateway.
        pumps = (
            asyncio.create_task(self._pump(self.client, self.remote, WSCloseCode.GOING_AWAY)),
            asyncio.create_task(self._pump(self.remote, self.client, WSCloseCode.BAD_GATEWAY)),
        )
        try:
            # The pump that sees the end closes both sockets, which ends the other pump too.
            await asyncio.gather(*pumps)
        except ConnectionError:
            await self._close_both(WSCloseCode.BAD_GATEWAY, b"")  # a send to a side that had just vanished
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task

    async def _admit(self, text: str) -> bool:
        """Forward an allowed client text frame, answer a refused one; False once the link is dropped."""
        assert self.grant is not None
        verdict = judge_message(text, self.grant)
        if verdict.send is not None:
            await self.remote.send_str(verdict.send)
        elif verdict.reply is not None:
            await self.client.send_str(verdict.reply)  # the upstream never sees a refused message
            _log.info("websocket message refused", action=verdict.refused, subject=self.grant.user_id)
        else:
            # Unreadable: Agno's handler dies and the connection ends without a close frame; so does this one.
            await self.remote.close(code=WSCloseCode.GOING_AWAY)
            self.client.abort()
            return False
        return True

    async def _close_both(self, code: int, reason: bytes) -> None:
        # The upstream first: closing the client ends its connection, and with it this handler.
        await self.remote.close(code=code, message=reason)
        await self.client.close(code=code, message=reason)

    async def _pump(self, source: Socket, sink: Socket, vanished: int) -> None:
        """Copy frames from `source` to `sink`; when `source` ends, close both with its code and reason."""
        while True:
            msg = await source.receive()
            if msg.type is WSMsgType.TEXT and self.grant is not None and source is self.client:
                if not await self._admit(msg.data):
                    return
            elif msg.type is WSMsgType.TEXT:
                await sink.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type is WSMsgType.CLOSING:
                return  # the other pump is closing this socket: the close is its to relay
            elif msg.type in _ENDED:
                await self._close_both(*_close_of(source, msg, vanished))
                return


def _close_of(source: Socket, msg: aiohttp.WSMessage, vanished: int) -> tuple[int, bytes]:
    if msg.type is WSMsgType.CLOSE:
        code, reason = int(msg.data), (msg.extra or "").encode()
    else:
        code, reason = source.close_code or WSCloseCode.ABNORMAL_CLOSURE, b""
    if code == WSCloseCode.ABNORMAL_CLOSURE:
        return vanished, b""
    if code < 1000 or code in _UNSENDABLE:  # a close frame without a status: a normal end
        return WSCloseCode.OK, reason
    return code, reason
