"""The raw upstream: an asyncio server on 127.0.0.1 that keeps the exact bytes of every request it receives
and answers each with a small fixed answer naming the request's method and path.

Below any HTTP library of ours: httptools (llhttp) only finds where one request ends and the next begins,
so what is recorded is the proxy's bytes as they went on the wire, not a parser's reading of them.

Answers: `200` with `Content-Length` and the body `METHOD PATH`; a target whose path ends in `/chunked` gets
the same body chunked, one ending in `/no-content` a bodiless 204; a HEAD gets the GET's head and no body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httptools


@dataclass
class Arrivals:
    """What reached the upstream, across every connection, in order: whole requests, and the bytes of each
    connection that never made a whole one (the proxy stopped, or the parser refused them)."""

    requests: list[bytes] = field(default_factory=list)
    leftovers: dict[int, bytearray] = field(
        default_factory=dict
    )  # per connection, bytes after its last request
    bytes_in: int = 0

    def incomplete(self) -> list[bytes]:
        return [bytes(rest) for _, rest in sorted(self.leftovers.items()) if rest]

    def clear(self) -> None:
        self.requests.clear()
        self.leftovers.clear()
        self.bytes_in = 0


class _Request:
    """httptools' callbacks for one request at a time (it calls these names on the object it is given)."""

    def __init__(self) -> None:
        self.url = b""
        self.complete = False

    def on_message_begin(self) -> None:
        self.url = b""
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        self.complete = True


def _answer(method: str, url: bytes) -> bytes:
    path = url.partition(b"?")[0]
    body = method.encode() + b" " + path
    if path.endswith(b"/no-content"):
        return b"HTTP/1.1 204 No Content\r\n\r\n"
    if path.endswith(b"/chunked"):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        return head + (b"" if method == "HEAD" else b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)
    return head + (b"" if method == "HEAD" else body)


class _Connection(asyncio.Protocol):
    def __init__(self, arrivals: Arrivals, number: int) -> None:
        self._arrivals = arrivals
        self._number = number
        self._request = _Request()
        self._parser = httptools.HttpRequestParser(self._request)
        self._transport: asyncio.Transport | None = None
        self._broken = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._arrivals.bytes_in += len(data)
        pending = self._arrivals.leftovers.setdefault(self._number, bytearray())  # cleared between entries
        for i in range(len(data)):
            pending.append(data[i])
            if self._broken:
                continue  # kept, never parsed: what came after bytes the parser refused
            # One byte at a time: the only way llhttp says where a request ends (requests here are small).
            try:
                self._parser.feed_data(data[i : i + 1])
            except httptools.HttpParserUpgrade:
                # The upgrade is not taken (the answer is a 200): the next bytes are a new request.
                self._parser = httptools.HttpRequestParser(self._request)
            except httptools.HttpParserError:
                self._broken = True
                self.close()
                continue
            if self._request.complete:
                self._request.complete = False
                self._arrivals.requests.append(bytes(pending))
                pending.clear()
                self._reply()

    def _reply(self) -> None:
        assert self._transport is not None
        method = self._parser.get_method().decode("latin-1")
        self._transport.write(_answer(method, self._request.url))
        if not self._parser.should_keep_alive():
            self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass
class RawUpstream:
    arrivals: Arrivals = field(default_factory=Arrivals)
    url: str = ""
    authority: str = ""  # host:port, as the proxy writes it in Host
    _connections: list[_Connection] = field(default_factory=list)

    def _protocol(self) -> _Connection:
        conn = _Connection(self.arrivals, len(self._connections) + 1)
        self._connections.append(conn)
        return conn


@asynccontextmanager
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    """A RawUpstream on 127.0.0.1, port chosen by the OS; stopped when the block ends."""
    up = RawUpstream()
    server = await asyncio.get_running_loop().create_server(up._protocol, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    up.authority = f"{host}:{port}"
    up.url = f"http://{up.authority}"
    try:
        yield up
    finally:
        server.close()
        for conn in up._connections:
            conn.close()
        await server.wait_closed()
