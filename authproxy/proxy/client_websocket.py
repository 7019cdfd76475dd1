"""The client's side of a WebSocket relay on the proxied port: the handshake, then frames.

Frames are read and written by wsproto (a maintained sans-I/O implementation of RFC 6455); this module
writes the 101 answer, moves bytes between it and the connection, answers pings, and presents the socket
as the relay (websocket.py) reads it: `receive()` gives aiohttp's WSMessage, as the upstream side does.
No extension is negotiated: a server may decline every offer (RFC 6455 §9.1), and the relay then never
inflates a client's frames.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib

from aiohttp import WSCloseCode, WSMessage, WSMsgType
from multidict import CIMultiDictProxy
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, generate_accept_token

from authproxy.answers.table import SERVER
from authproxy.proxy.client_exchange import ClientExchange

__all__ = ["ClientSocket", "is_websocket_upgrade", "valid_handshake"]

MAX_MESSAGE = 16 * 1024 * 1024
CLOSE_TIMEOUT = 10.0  # how long a close we sent waits for the client's
_QUEUE_BYTES = 1024 * 1024  # messages buffered before the socket is no longer read


def is_websocket_upgrade(method: str, headers: CIMultiDictProxy[str]) -> bool:
    """A request asking for a WebSocket: the relay's way (then valid_handshake judges the handshake)."""
    return method == "GET" and headers.get("Upgrade", "").strip().lower() == "websocket"


def _tokens(values: list[str]) -> set[str]:
    return {t.strip().lower() for v in values for t in v.split(",")}


def valid_handshake(exchange: ClientExchange) -> bool:
    """A WebSocket opening handshake we can accept (RFC 6455 §4.2.1); checked before dialling the upstream."""
    headers = exchange.headers
    if exchange.method != "GET" or exchange.version < (1, 1):
        return False
    if "websocket" not in _tokens(headers.getall("Upgrade", [])):
        return False
    if "upgrade" not in _tokens(headers.getall("Connection", [])):
        return False
    if headers.getall("Sec-WebSocket-Version", []) != ["13"]:
        return False
    keys = headers.getall("Sec-WebSocket-Key", [])
    if len(keys) != 1:
        return False
    try:
        return len(base64.b64decode(keys[0].strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


class ClientSocket:
    """The accepted client WebSocket: `receive`, `send_str`, `send_bytes`, `close`, `close_code`."""

    def __init__(self, exchange: ClientExchange) -> None:
        self._exchange = exchange
        self._link = exchange.link
        self._ws = Connection(ConnectionType.SERVER)
        self._queue: asyncio.Queue[WSMessage] = asyncio.Queue()
        self._queued = 0
        self._held = False
        self._parts: list[str | bytes | bytearray] = []
        self._size = 0
        self._closed = asyncio.Event()  # the client's close frame came, or the connection ended
        self.close_code: int | None = None

    async def accept(self, protocol: str | None) -> None:
        """Write the 101 and take over the connection's bytes."""
        key = self._exchange.headers["Sec-WebSocket-Key"].strip()
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {generate_accept_token(key.encode()).decode()}",
            f"Server: {SERVER}",  # the 101 is ours: no version banner
        ]
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        self._exchange.output_size += 1
        self._exchange.status = 101
        self._link.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        tail = self._link.switch(self._received, self._gone)
        await self._link.drain()
        if tail:
            self._received(tail)

    # --- the relay's side ---------------------------------------------------------------------------------

    async def receive(self) -> WSMessage:
        message = await self._queue.get()
        if isinstance(message.data, (str, bytes)):
            self._queued -= len(message.data)
            if self._held and self._queued <= _QUEUE_BYTES // 2:
                self._held = False
                self._link.hold(False)
        return message

    async def send_str(self, text: str) -> None:
        await self._send(TextMessage(data=text))

    async def send_bytes(self, data: bytes) -> None:
        await self._send(BytesMessage(data=data))

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> None:
        """Close with `code`: answer the client's close, or send ours and wait (bounded) for its answer."""
        state = self._ws.state
        if state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            reason = message.decode("utf-8", "replace")
            with contextlib.suppress(ConnectionError):
                self._link.write(self._ws.send(CloseConnection(code=code, reason=reason)))
            if self.close_code is None:
                self.close_code = code
            self._queue.put_nowait(WSMessage(WSMsgType.CLOSING, None, None))  # ends a pump waiting on it
            if state is ConnectionState.OPEN:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await self._closed.wait()
        self._link.close()

    def abort(self) -> None:
        self._link.abort()

    async def _send(self, event: TextMessage | BytesMessage) -> None:
        if self._ws.state is not ConnectionState.OPEN:
            raise ConnectionResetError("the client's WebSocket is closing")
        self._link.write(self._ws.send(event))
        await self._link.drain()

    # --- the connection's side ----------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        try:
            self._ws.receive_data(data)
        except LocalProtocolError:
            return  # bytes after the closing handshake ended: nothing is read any more
        for event in self._ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._part(event)
            elif isinstance(event, Ping) and self._ws.state is ConnectionState.OPEN:
                # Answered per hop while open; once our close is sent, the close is all that is answered.
                with contextlib.suppress(ConnectionError):
                    self._link.write(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._client_closed(event.code, event.reason or "")
                return

    def _part(self, event: TextMessage | BytesMessage) -> None:
        self._parts.append(event.data)
        self._size += len(event.data)
        if self._size > MAX_MESSAGE:
            self._parts, self._size = [], 0
            self._client_closed(WSCloseCode.MESSAGE_TOO_BIG, "message too big", error=True)
            return
        if not event.message_finished:
            return
        parts, self._parts, self._size = self._parts, [], 0
        if isinstance(event, TextMessage):
            self._put(WSMessage(WSMsgType.TEXT, "".join(str(p) for p in parts), None))
        else:
            self._put(WSMessage(WSMsgType.BINARY, b"".join(p for p in parts if not isinstance(p, str)), None))

    def _put(self, message: WSMessage) -> None:
        self._queue.put_nowait(message)
        self._queued += len(message.data)
        if not self._held and self._queued > _QUEUE_BYTES:
            self._held = True
            self._link.hold(True)

    def _client_closed(self, code: int, reason: str, *, error: bool = False) -> None:
        if self.close_code is None:
            self.close_code = code
        if error:  # a frame we cannot take: the client gets the close code, the relay an error
            self._queue.put_nowait(WSMessage(WSMsgType.ERROR, None, None))
        else:
            self._queue.put_nowait(WSMessage(WSMsgType.CLOSE, code, reason))
        self._closed.set()

    def _gone(self) -> None:
        if self.close_code is None:
            self.close_code = WSCloseCode.ABNORMAL_CLOSURE
        self._queue.put_nowait(WSMessage(WSMsgType.CLOSED, None, None))
        self._closed.set()
