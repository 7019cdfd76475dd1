"""The proxied port's HTTP/1.1 server: asyncio protocols and llhttp (httptools) in place of aiohttp's server.

`Listener` is the protocol factory the port is served with (serve/lifecycle.py) and the set of its open
connections, which it drains on shutdown. Each connection is a ClientConnection (client_connection.py);
what a head may be, and the limits, are request_head.py's (named here too, as the port's limits).
"""

from __future__ import annotations

import asyncio
import contextlib

from authproxy.proxy.client_connection import ClientConnection, Handler
from authproxy.proxy.request_head import (
    HEAD_TIMEOUT,
    MAX_FIELD_SIZE,
    MAX_HEADERS,
    MAX_LINE_SIZE,
    parse_error_answer,
)

__all__ = [
    "HEAD_TIMEOUT",
    "MAX_FIELD_SIZE",
    "MAX_HEADERS",
    "MAX_LINE_SIZE",
    "Listener",
    "parse_error_answer",
]


class Listener:
    """The protocol factory of the proxied port, and the set of its open connections (for the drain)."""

    def __init__(self, handler: Handler, *, head_timeout: float = HEAD_TIMEOUT) -> None:
        self.handler = handler
        self.head_timeout = head_timeout
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self._idle = asyncio.Event()

    def __call__(self) -> ClientConnection:
        return ClientConnection(self)

    def closed(self, connection: ClientConnection) -> None:
        self.connections.discard(connection)
        if not any(c.busy for c in self.connections):
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Close idle connections now, the others after their answer; past `grace`, cancel what is left."""
        self.draining = True
        for connection in list(self.connections):
            connection.close_when_idle()
        self._idle.clear()
        if any(c.busy for c in self.connections):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    while any(c.busy for c in self.connections):
                        self._idle.clear()
                        await self._idle.wait()
        for connection in list(self.connections):
            connection.abort()
        tasks = [c.task for c in self.connections if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
