"""ClientSocket: the client side of a WebSocket relay on a real loopback connection, driven by a wsproto
client: the handshake check, messages whole (fragments joined), pings, the size bound, the closing
handshake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSCloseCode, WSMessage, WSMsgType
from multidict import CIMultiDict
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from authproxy.proxy.client_body import BodyStream
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.client_websocket import MAX_MESSAGE, ClientSocket, valid_handshake
from authproxy.proxy.protocol import Listener

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _exchange(
    headers: dict[str, str], method: str = "GET", version: tuple[int, int] = (1, 1)
) -> ClientExchange:
    body = BodyStream(lambda on: None)
    body.feed_eof()
    return ClientExchange(
        None,  # type: ignore[arg-type]  # the handshake check reads the request only
        method,
        "/ws",
        version,
        CIMultiDict(headers),
        body,
        keep_alive=True,
        chunked=False,
        remote=None,
        scheme="http",
        ssl_object=None,
    )


GOOD = {"Host": "a", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}


@pytest.mark.parametrize(
    ("headers", "method", "ok"),
    [
        ({**GOOD, "Sec-WebSocket-Key": KEY}, "GET", True),
        ({**GOOD, "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Key": KEY}, "GET", True),
        ({**GOOD, "Sec-WebSocket-Key": KEY}, "POST", False),
        ({**GOOD}, "GET", False),  # no key
        ({**GOOD, "Sec-WebSocket-Key": "c2hvcnQ="}, "GET", False),  # not 16 bytes
        ({**GOOD, "Sec-WebSocket-Key": "not base64!"}, "GET", False),
        ({**GOOD, "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": KEY}, "GET", False),
        ({**GOOD, "Connection": "keep-alive", "Sec-WebSocket-Key": KEY}, "GET", False),
    ],
)
def test_the_handshake_is_checked_before_anything_is_dialled(
    headers: dict[str, str], method: str, ok: bool
) -> None:
    assert valid_handshake(_exchange(headers, method)) is ok


class Peer:
    """A WebSocket client over a raw loopback connection, frames by wsproto."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ws = WSConnection(ConnectionType.CLIENT)

    def send(self, event: Any) -> None:
        self.writer.write(self.ws.send(event))

    async def events(self, until: type) -> list[Any]:
        """Events until one of type `until` (bounded)."""
        seen: list[Any] = []
        async with asyncio.timeout(5):
            while True:
                data = await self.reader.read(65536)
                self.ws.receive_data(data or None)
                for event in self.ws.events():
                    seen.append(event)
                    if isinstance(event, until):
                        return seen
                if not data:
                    return seen


@contextlib.asynccontextmanager
async def _relay_back() -> AsyncIterator[Peer]:
    """A listener whose handler accepts the socket and sends back what it receives, upper-cased."""

    async def handler(exchange: ClientExchange) -> None:
        socket = ClientSocket(exchange)
        await socket.accept(None)
        while True:
            message: WSMessage = await socket.receive()
            if message.type is WSMsgType.TEXT:
                await socket.send_str(message.data.upper())
            elif message.type is WSMsgType.BINARY:
                await socket.send_bytes(bytes(reversed(message.data)))
            else:
                await socket.close(code=socket.close_code or WSCloseCode.OK)
                return

    listener = Listener(handler)
    server = await asyncio.get_running_loop().create_server(listener, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    peer = Peer(reader, writer)
    peer.send(Request(host="a", target="/ws"))
    assert any(isinstance(e, AcceptConnection) for e in await peer.events(AcceptConnection))
    try:
        yield peer
    finally:
        writer.close()
        server.close()
        await listener.drain(1.0)
        await server.wait_closed()


async def test_messages_go_whole_and_fragments_are_joined() -> None:
    async with _relay_back() as peer:
        peer.send(TextMessage(data="hel", message_finished=False))
        peer.send(TextMessage(data="lo", message_finished=True))
        texts = [e for e in await peer.events(TextMessage) if isinstance(e, TextMessage)]
        assert "".join(t.data for t in texts) == "HELLO"
        peer.send(BytesMessage(data=b"\x01\x02\x03"))
        binaries = [e for e in await peer.events(BytesMessage) if isinstance(e, BytesMessage)]
        assert b"".join(bytes(b.data) for b in binaries) == b"\x03\x02\x01"


async def test_a_ping_is_answered_with_its_payload() -> None:
    async with _relay_back() as peer:
        peer.send(Ping(payload=b"are you there"))
        pongs = [e for e in await peer.events(Pong) if isinstance(e, Pong)]
        assert [bytes(p.payload) for p in pongs] == [b"are you there"]


async def test_the_clients_close_is_answered_with_its_code() -> None:
    async with _relay_back() as peer:
        peer.send(CloseConnection(code=4001, reason="done"))
        closes = [e for e in await peer.events(CloseConnection) if isinstance(e, CloseConnection)]
        assert [c.code for c in closes] == [4001]
        peer.writer.write(b"\x81\x85abcdefghi")  # a frame after the close: not read, nothing breaks
        assert await peer.reader.read() == b""


async def test_a_message_over_the_bound_is_closed_with_1009() -> None:
    async with _relay_back() as peer:
        part = b"x" * (1024 * 1024)
        for _ in range(MAX_MESSAGE // len(part)):
            peer.send(Message(data=part, message_finished=False))
        peer.send(Message(data=b"x", message_finished=False))
        closes = [e for e in await peer.events(CloseConnection) if isinstance(e, CloseConnection)]
        assert [c.code for c in closes] == [WSCloseCode.MESSAGE_TOO_BIG]
